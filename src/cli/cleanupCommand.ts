import { Command, Options } from "@effect/cli"
import { Effect } from "effect"
import { cleanupExitCode, runCleanup } from "../jobs/cleanup.js"
import { exitWithCode } from "./exit.js"

export const dryRunOption = Options.boolean("dry-run").pipe(
  Options.withDescription("Show what would be deleted, delete nothing, send no email (a preview is printed).")
)

export const cleanupCommand = Command.make("cleanup-deleted-prompts", { dryRun: dryRunOption }, ({ dryRun }) =>
  runCleanup({ dryRun }).pipe(Effect.flatMap((report) => exitWithCode(cleanupExitCode(report))))
).pipe(
  Command.withDescription(
    "Purge trashed prompts whose retention has passed (TRASH_RETENTION_DAYS_FREE, default 5; " +
      "TRASH_RETENTION_DAYS_PREMIUM, default 30): their Cloudinary image and video, their likes, comments, " +
      "moderation logs, content flags and tags, and the prompt row; then email a summary to ADMIN_EMAIL. " +
      "Exit 0 when all succeeded, 1 when any prompt failed or the email could not be sent, 2 for bad usage or configuration."
  )
)
