import { Clock, Duration, Effect, Ref, Schedule } from "effect"
import type { RetryPolicy } from "../services/AppConfig.js"
import { CloudinaryRateLimited, type CloudinaryError } from "../services/Cloudinary.js"
import type { DatabaseError } from "../services/Database.js"

/**
 * The one place that decides what a failure means:
 * - retried: transient Cloudinary failures (5xx, dropped connections, timeouts) and transient
 *   database failures, with exponential backoff and jitter, bounded in attempts and in time;
 * - never retried: other 4xx (bad credentials, bad requests);
 * - 420/429 stops every further Admin API call of this run (the quota is spent until the reset).
 */
export const retrySchedule = (policy: RetryPolicy) =>
  Schedule.exponential("250 millis", 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(policy.maxRetries)),
    Schedule.upTo(policy.maxElapsed)
  )

export const isTransient = (error: CloudinaryError | DatabaseError): boolean =>
  error._tag === "CloudinaryUnavailable" || (error._tag === "DatabaseError" && error.transient)

export const retryTransient =
  (policy: RetryPolicy) =>
  <A, E extends CloudinaryError | DatabaseError, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.retry(effect, { schedule: retrySchedule(policy), while: isTransient })

/** Remembers a spent quota so that no further Admin call is made in this run. */
export interface QuotaGuard {
  readonly guard: <A, R>(
    call: Effect.Effect<A, CloudinaryError, R>
  ) => Effect.Effect<A, CloudinaryError, R>
  readonly exhausted: Effect.Effect<CloudinaryRateLimited | null>
}

export const makeQuotaGuard = Effect.gen(function* () {
  const tripped = yield* Ref.make<CloudinaryRateLimited | null>(null)
  const guard: QuotaGuard["guard"] = (call) =>
    Effect.flatMap(Ref.get(tripped), (limit) =>
      limit !== null
        ? Effect.fail(
            new CloudinaryRateLimited({
              operation: limit.operation,
              status: limit.status,
              message: `not attempted: the Admin API quota is spent (${limit.message})`
            })
          )
        : call.pipe(Effect.tapError((error) => (error._tag === "CloudinaryRateLimited" ? Ref.set(tripped, error) : Effect.void)))
    )
  return { guard, exhausted: Ref.get(tripped) } satisfies QuotaGuard
})

export const describeCloudinaryError = (error: CloudinaryError): string => {
  switch (error._tag) {
    case "CloudinaryRateLimited":
      return `Cloudinary quota exhausted (HTTP ${error.status}): ${error.message}`
    case "CloudinaryRejected":
      return `Cloudinary rejected ${error.operation} (HTTP ${error.status}): ${error.message}`
    case "CloudinaryUnavailable":
      return `Cloudinary unavailable during ${error.operation}${error.status !== null ? ` (HTTP ${error.status})` : ""}: ${error.message}`
  }
}

export const describeDatabaseError = (error: DatabaseError): string =>
  `database error during ${error.operation}: ${error.message}`

/** Says, before each unit of work, whether the run has used up its time budget (checked, never forced). */
export const makeDeadline = (startedAt: Date, budget: Duration.Duration) =>
  Effect.map(Clock.currentTimeMillis, (now) =>
    now - startedAt.getTime() >= Duration.toMillis(budget)
      ? `the run's time budget (RUN_TIME_BUDGET=${Duration.format(budget)}) is spent`
      : null
  )
