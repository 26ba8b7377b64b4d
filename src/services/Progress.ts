import { Console, Context, Effect, Layer } from "effect"

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

export const makeTerminalProgress = (
  stream: NodeJS.WriteStream,
  base: Console.Console
): ProgressShape & { readonly console: Console.Console } => {
  let active = false
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
  // Console lines clear the bar first and redraw it after, so they never share a line with it.
  const around =
    (print: (...args: ReadonlyArray<unknown>) => void) =>
    (...args: ReadonlyArray<unknown>) =>
      Effect.sync(() => {
        if (active) stream.write("\r\x1b[2K")
        print(...args)
        if (active) draw(true)
      })
  const console = new Proxy(base, {
    get: (target, key) =>
      key === "log" || key === "info"
        ? around((...args) => base.unsafe.log(...args))
        : key === "error" || key === "warn"
          ? around((...args) => base.unsafe.error(...args))
          : target[key as keyof Console.Console]
  })
  return {
    console,
    start: (newLabel, newTotal) =>
      Effect.sync(() => {
        label = newLabel
        total = newTotal
        done = 0
        active = true
        draw(true)
      }),
    advance: (count) =>
      Effect.sync(() => {
        done += count
        draw(false)
      }),
    finish: Effect.sync(() => {
      if (!active) return
      active = false
      stream.write("\r\x1b[2K")
    })
  }
}

const silent: ProgressShape = { start: () => Effect.void, advance: () => Effect.void, finish: Effect.void }

export const ProgressLive = Layer.unwrapEffect(
  Effect.map(Effect.console, (base) => {
    if (process.stdout.isTTY !== true || process.stderr.isTTY !== true) return Layer.succeed(Progress, silent)
    const terminal = makeTerminalProgress(process.stderr, base)
    return Layer.merge(Layer.succeed(Progress, terminal), Console.setConsole(terminal.console))
  })
)

/** Records what was reported, for tests. */
export const ProgressInMemory = (events: Array<string>) =>
  Layer.succeed(Progress, {
    start: (label, total) => Effect.sync(() => void events.push(`start ${label} ${total ?? "?"}`)),
    advance: (count) => Effect.sync(() => void events.push(`advance ${count}`)),
    finish: Effect.sync(() => void events.push("finish"))
  })
