import { Console, Context, Data, Effect, Layer, Option, Redacted } from "effect"
import nodemailer from "nodemailer"
import { redact } from "../domain/format.js"
import { AppConfig } from "./AppConfig.js"

/** Either inline content or a file that nodemailer streams from disk (large reports stay out of memory). */
export type MailAttachment =
  | { readonly filename: string; readonly contentType: string; readonly content: string }
  | { readonly filename: string; readonly contentType: string; readonly path: string }

export interface MailMessage {
  readonly to: ReadonlyArray<string>
  readonly subject: string
  readonly text: string
  readonly attachments?: ReadonlyArray<MailAttachment>
}

export class MailError extends Data.TaggedError("MailError")<{ readonly message: string }> {}

export interface MailerShape {
  readonly send: (message: MailMessage) => Effect.Effect<void, MailError>
  /** Where mail goes, for the console ("smtp host:port" or "console"); never the credentials. */
  readonly destination: string
}

export class Mailer extends Context.Tag("promptflow/Mailer")<Mailer, MailerShape>() {}

/** Render a message as Django's console backend does, so local runs show exactly what would be sent. */
export const renderForConsole = (from: string, message: MailMessage): string =>
  [
    "Content-Type: text/plain; charset=\"utf-8\"",
    `Subject: ${message.subject}`,
    `From: ${from}`,
    `To: ${message.to.join(", ")}`,
    "",
    message.text,
    ...(message.attachments ?? []).map((a) => `[attachment: ${"path" in a ? a.path : `${a.filename}, ${Buffer.byteLength(a.content)} bytes`}]`),
    "-".repeat(79)
  ].join("\n")

const smtpDestination = (url: string): string => {
  const parsed = new URL(url)
  return `${parsed.protocol.replace(":", "")} ${parsed.hostname}:${parsed.port || (parsed.protocol === "smtps:" ? "465" : "587")}`
}

export const makeSmtpMailer = (smtpUrl: Redacted.Redacted<string>, from: string, secretsToHide: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => nodemailer.createTransport(Redacted.value(smtpUrl))),
    (transport) => Effect.sync(() => transport.close())
  ).pipe(
    Effect.map((transport) =>
      Mailer.of({
        destination: smtpDestination(Redacted.value(smtpUrl)),
        send: (message) =>
          Effect.tryPromise({
            try: () =>
              transport.sendMail({
                from,
                to: [...message.to],
                subject: message.subject,
                text: message.text,
                attachments: (message.attachments ?? []).map((a) => ({ ...a }))
              }),
            catch: (error) =>
              new MailError({ message: redact(error instanceof Error ? error.message : String(error), secretsToHide) })
          }).pipe(Effect.asVoid)
      })
    )
  )

const consoleMailer = (from: string) =>
  Mailer.of({
    destination: "console",
    send: (message) => Console.log(renderForConsole(from, message))
  })

/** SMTP when SMTP_URL is set, otherwise the console (as Django's console backend). */
export const MailerLive = Layer.scoped(
  Mailer,
  Effect.gen(function* () {
    const config = yield* AppConfig
    return yield* Option.match(config.smtpUrl, {
      onNone: () => Effect.succeed(consoleMailer(config.fromEmail)),
      onSome: (url) => {
        const password = decodeURIComponent(new URL(Redacted.value(url)).password)
        return makeSmtpMailer(url, config.fromEmail, [password])
      }
    })
  })
)

/** Captures messages; fails every send with `failWith` when given. */
export const MailerInMemory = (outbox: Array<MailMessage>, failWith?: string) =>
  Layer.succeed(
    Mailer,
    Mailer.of({
      destination: "memory",
      send: (message) =>
        failWith !== undefined
          ? Effect.fail(new MailError({ message: failWith }))
          : Effect.sync(() => {
              outbox.push(message)
            })
    })
  )
