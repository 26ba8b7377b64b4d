import { Console, Effect } from "effect"
import { plural } from "../domain/format.js"
import { AppConfig } from "../services/AppConfig.js"
import { Mailer, renderForConsole, type MailMessage } from "../services/Mailer.js"

export interface MailOutcome {
  readonly status: "sent" | "failed" | "not-needed" | "preview"
  readonly detail: string | null
}

/**
 * The last step of every job: in dry-run print the email as a preview, otherwise send it. A failed
 * send is reported (and later makes the exit code 1) but never undoes the job's work.
 */
export const deliverSummary = (options: {
  readonly wanted: boolean
  readonly dryRun: boolean
  /** Built only when needed: it may read the report's final figures. */
  readonly message: () => MailMessage
  readonly sentPrefix?: string
}) =>
  Effect.gen(function* () {
    if (!options.wanted) return { status: "not-needed", detail: null } satisfies MailOutcome
    const config = yield* AppConfig
    const message = options.message()
    if (options.dryRun) {
      yield* Console.log("")
      yield* Console.log(`[DRY RUN] Email preview (not sent, ${plural(message.to.length, "admin")}):`)
      yield* Console.log(renderForConsole(config.fromEmail, message))
      return { status: "preview", detail: null } satisfies MailOutcome
    }
    const mailer = yield* Mailer
    const sent = yield* Effect.either(mailer.send(message))
    if (sent._tag === "Left") {
      yield* Console.log(`✗ Failed to send email summary: ${sent.left.message}`)
      return { status: "failed", detail: sent.left.message } satisfies MailOutcome
    }
    yield* Console.log(`${options.sentPrefix ?? ""}Email summary sent to ${message.to.length} admin(s)`)
    return { status: "sent", detail: null } satisfies MailOutcome
  })
