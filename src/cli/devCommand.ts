import { Command, Options } from "@effect/cli"
import { SqlClient } from "@effect/sql"
import { Clock, Console, Effect, type Layer } from "effect"
import { startCloudinaryEmulator } from "../dev/cloudinaryEmulator.js"
import { startSmtpServer } from "../dev/mailbox.js"
import { demoAssets, loadFixtureSchema, seedDemo } from "../dev/seed.js"
import { formatUtc } from "../domain/format.js"
import { ExitWith } from "./exit.js"

/** Tools for trying the jobs by hand against local stand-ins: never pointed at production. */
const port = (fallback: number) =>
  Options.integer("port").pipe(Options.withDefault(fallback), Options.withDescription("Port on 127.0.0.1."))

const untilInterrupted = Effect.never

const emulator = Command.make(
  "emulator",
  {
    port: port(9090),
    cloudName: Options.text("cloud-name").pipe(Options.withDefault("promptflow-dev")),
    apiKey: Options.text("api-key").pipe(Options.withDefault("123456789012345")),
    apiSecret: Options.text("api-secret").pipe(Options.withDefault("dev-secret")),
    hourlyLimit: Options.integer("hourly-limit").pipe(Options.withDefault(500), Options.withDescription("Admin API calls allowed per hour.")),
    demoAssets: Options.boolean("demo-assets").pipe(Options.withDescription("Start with the files `dev seed` rows refer to (and some orphans)."))
  },
  (options) =>
    Effect.gen(function* () {
      const running = yield* Effect.acquireRelease(
        Effect.promise(() =>
          startCloudinaryEmulator({
            port: options.port,
            cloudName: options.cloudName,
            apiKey: options.apiKey,
            apiSecret: options.apiSecret,
            hourlyLimit: options.hourlyLimit,
            log: (line) => console.log(`[${new Date().toISOString()}] ${line}`)
          })
        ),
        (e) => Effect.promise(e.close)
      )
      if (options.demoAssets) {
        const now = new Date(yield* Clock.currentTimeMillis)
        for (const asset of demoAssets(now)) running.addAsset(asset)
      }
      yield* Console.log(`Cloudinary emulator on ${running.url} with ${running.assets().length} files. Point the jobs at it with:`)
      yield* Console.log(`  export CLOUDINARY_URL='${running.cloudinaryUrl}'`)
      yield* Console.log(`List its files: curl -u ${running.apiKey}:${running.apiSecret} '${running.url}/v1_1/${running.cloudName}/resources/image?max_results=500'`)
      yield* Console.log("Each request is printed below; Ctrl-C stops it.")
      return yield* untilInterrupted
    }).pipe(Effect.scoped)
).pipe(Command.withDescription("Run the Cloudinary emulator on its own, printing the CLOUDINARY_URL to use and every request it answers."))

const mailbox = Command.make("mailbox", { port: port(1025) }, ({ port }) =>
  Effect.gen(function* () {
    yield* Effect.acquireRelease(
      Effect.promise(() =>
        startSmtpServer({
          port,
          onMessage: (mail) =>
            console.log(
              [
                "-".repeat(79),
                `From: ${mail.from?.text ?? ""}`,
                `To: ${[mail.to ?? []].flat().map((a) => a.text).join(", ")}`,
                `Subject: ${mail.subject ?? ""}`,
                "",
                mail.text ?? "",
                ...mail.attachments.map((a) => `[attachment: ${a.filename ?? "unnamed"}, ${a.size} bytes]`)
              ].join("\n")
            )
        })
      ),
      (server) => Effect.promise(server.close)
    )
    yield* Console.log(`SMTP mailbox on 127.0.0.1:${port}. Point the jobs at it with:`)
    yield* Console.log(`  export SMTP_URL='smtp://127.0.0.1:${port}'`)
    yield* Console.log("Each message received is printed below; Ctrl-C stops it.")
    return yield* untilInterrupted
  }).pipe(Effect.scoped)
).pipe(Command.withDescription("Run a local SMTP server that prints every email it receives."))

const seed = Command.make("seed", {}, () =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const tables = yield* sql<{ present: boolean }>`SELECT to_regclass('public.prompts_prompt') IS NOT NULL AS present`
    if (tables[0]?.present === true) {
      const rows = yield* sql<{ n: string }>`SELECT count(*) AS n FROM prompts_prompt`
      if (Number(rows[0]?.n ?? 0) > 0) {
        yield* Console.error("✗ Refusing to seed: this database already holds prompts. Use an empty database.")
        return yield* new ExitWith({ code: 2 })
      }
    } else {
      yield* loadFixtureSchema
      yield* Console.log("Loaded PromptFlow's schema (fixtures/promptflow-schema.sql).")
    }
    const now = new Date(yield* Clock.currentTimeMillis)
    const demo = yield* seedDemo(now)
    yield* Console.log(`Seeded 3 users and 10 prompts as of ${formatUtc(now)}; the matching files: dev emulator --demo-assets.`)
    yield* Console.log(`Premium users are in ${demo.premiumSource}:`)
    yield* Console.log(`  export PREMIUM_TIER_SOURCE=${demo.premiumSource}`)
  })
).pipe(
  Command.withDescription(
    "Fill an EMPTY database (DATABASE_URL) with PromptFlow's schema and the demo's users and prompts, to try the jobs against a real PostgreSQL. Refuses a database that holds prompts."
  )
)

/** `seed` gets its database from main (DATABASE_URL); the emulator and the mailbox need nothing. */
export const makeDevCommand = <E>(database: Layer.Layer<SqlClient.SqlClient, E>) =>
  Command.make("dev").pipe(
    Command.withDescription("Local stand-ins for trying the jobs by hand: the Cloudinary emulator, an SMTP mailbox, demo data."),
    Command.withSubcommands([emulator, mailbox, seed.pipe(Command.provide(database))])
  )
