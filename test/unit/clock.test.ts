import { Clock, Duration, Effect, Fiber, TestClock, TestContext } from "effect"
import { describe, expect, it } from "vitest"
import { runClock } from "../../src/jobs/clock.js"
import { captureConsole } from "../support/console.js"

describe("the program's own clock", () => {
  it("runs each job at its UTC cron time, in order, and carries on after a failure", async () => {
    const ran: Array<string> = []
    const lines: Array<string> = []
    const job = (name: string, code: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => ran.push(`${name}@${new Date(now).toISOString()}`))).pipe(Effect.as(code))
    const program = Effect.gen(function* () {
      // Sunday 2026-11-29, 02:30 UTC.
      yield* TestClock.setTime(new Date("2026-11-29T02:30:00Z").getTime())
      const fiber = yield* Effect.fork(
        runClock(
          [
            { name: "cleanup", cron: "0 3 * * *", run: job("cleanup", 1) },
            { name: "detect 7", cron: "0 4 * * *", run: job("detect 7", 0) },
            { name: "detect 90", cron: "0 5 * * 0", run: job("detect 90", 0) }
          ],
          4
        )
      )
      yield* TestClock.adjust(Duration.hours(25))
      return yield* Fiber.join(fiber)
    }).pipe(Effect.withConsole(captureConsole(lines)), Effect.provide(TestContext.TestContext))
    const runs = await Effect.runPromise(program)
    expect(runs).toBe(4)
    expect(ran).toEqual([
      "cleanup@2026-11-29T03:00:00.000Z",
      "detect 7@2026-11-29T04:00:00.000Z",
      "detect 90@2026-11-29T05:00:00.000Z",
      "cleanup@2026-11-30T03:00:00.000Z"
    ])
    expect(lines).toContain("⏰ cleanup finished with exit code 1")
  })
})
