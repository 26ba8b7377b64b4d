import { Clock, Console, Cron, Duration, Effect, Either } from "effect"
import { formatUtc } from "../domain/format.js"

/**
 * The program's own clock, for a Heroku `clock` dyno instead of Heroku Scheduler: runs each entry at
 * its cron time (UTC), one at a time, and carries on whatever a run's outcome.
 */
export interface ClockEntry {
  readonly name: string
  readonly cron: string
  /** Runs the job and answers its exit code. */
  readonly run: Effect.Effect<number>
}

export const parseEntries = (entries: ReadonlyArray<Omit<ClockEntry, "run"> & { run: Effect.Effect<number> }>) =>
  entries.map((entry) => {
    const parsed = Cron.parse(entry.cron, "UTC")
    if (Either.isLeft(parsed)) throw new Error(`${entry.name}: invalid cron expression "${entry.cron}"`)
    return { ...entry, schedule: parsed.right }
  })

/** Runs forever (until interrupted); `maxRuns` bounds it for tests. */
export const runClock = (entries: ReadonlyArray<ClockEntry>, maxRuns = Number.POSITIVE_INFINITY) =>
  Effect.gen(function* () {
    const scheduled = parseEntries(entries)
    for (const entry of scheduled) yield* Console.log(`⏰ ${entry.name}: "${entry.cron}" (UTC)`)
    let runs = 0
    while (runs < maxRuns) {
      const now = new Date(yield* Clock.currentTimeMillis)
      const upcoming = scheduled
        .map((entry) => ({ entry, at: Cron.next(entry.schedule, now) }))
        .sort((a, b) => a.at.getTime() - b.at.getTime())[0]!
      yield* Console.log(`⏰ Next: ${upcoming.entry.name} at ${formatUtc(upcoming.at)}`)
      yield* Effect.sleep(Duration.millis(Math.max(0, upcoming.at.getTime() - now.getTime())))
      yield* Console.log(`⏰ Running ${upcoming.entry.name}`)
      const code = yield* upcoming.entry.run
      yield* Console.log(`⏰ ${upcoming.entry.name} finished with exit code ${code}`)
      runs++
    }
    return runs
  })
