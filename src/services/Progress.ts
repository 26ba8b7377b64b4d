import { Context, Effect, Layer } from "effect"

/**
 * A progress indicator for people watching a terminal. It is drawn on stderr only when stdout and
 * stderr are both terminals, so scheduler logs, pipes and redirections keep just the greppable lines.
 */
export interface ProgressShape {
  readonly start: (label: string, total: number | null) => Effect.Effect<void>
  readonly advance: (count: number) => Effect.Effect<void>
  readonly finish: Effect.Effect<void>
}

export class Progress extends Context.Tag("promptflow/Progress")<Progress, ProgressShape>() {}

export const makeTerminalProgress = (stream: NodeJS.WriteStream): ProgressShape => {
  let label = ""
  let total: number | null = null
  let done = 0
  let lastDraw = 0
  const draw = (force: boolean) => {
    const now = Date.now()
    if (!force && now - lastDraw < 100) return
    lastDraw = now
    const width = 24
    const bar =
      total !== null && total > 0
        ? `[${"#".repeat(Math.min(width, Math.round((done / total) * width))).padEnd(width, ".")}] ${done}/${total}`
        : `${done}`
    stream.write(`\r\x1b[2K${label} ${bar}`)
  }
  return {
    start: (newLabel, newTotal) =>
      Effect.sync(() => {
        label = newLabel
        total = newTotal
        done = 0
        draw(true)
      }),
    advance: (count) =>
      Effect.sync(() => {
        done += count
        draw(false)
      }),
    finish: Effect.sync(() => {
      draw(true)
      stream.write("\n")
    })
  }
}

const silent: ProgressShape = { start: () => Effect.void, advance: () => Effect.void, finish: Effect.void }

export const ProgressLive = Layer.sync(Progress, () =>
  process.stdout.isTTY === true && process.stderr.isTTY === true ? makeTerminalProgress(process.stderr) : silent
)

/** Records what was reported, for tests. */
export const ProgressInMemory = (events: Array<string>) =>
  Layer.succeed(Progress, {
    start: (label, total) => Effect.sync(() => void events.push(`start ${label} ${total ?? "?"}`)),
    advance: (count) => Effect.sync(() => void events.push(`advance ${count}`)),
    finish: Effect.sync(() => void events.push("finish"))
  })
