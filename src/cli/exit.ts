import { Data, Effect } from "effect"

/** Exit codes a scheduler can act on. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2
} as const

/** A job that finished but must make the process exit non-zero (failures, partial scan, unsent mail). */
export class ExitWith extends Data.TaggedError("ExitWith")<{ readonly code: number }> {}

/** Ends a command with its job's exit code: nothing for 0, ExitWith otherwise. */
export const exitWithCode = (code: number): Effect.Effect<void, ExitWith> =>
  code === 0 ? Effect.void : Effect.fail(new ExitWith({ code }))
