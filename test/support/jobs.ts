import { ConfigProvider, Effect, Layer, type Scope } from "effect"
import { AppConfigLive } from "../../src/services/AppConfig.js"
import { CloudinaryLive } from "../../src/services/Cloudinary.js"
import { DatabaseLive, PgLive } from "../../src/services/Database.js"
import { MailerLive } from "../../src/services/Mailer.js"
import { MigrationsLive } from "../../src/services/Migrations.js"
import { ProgressInMemory } from "../../src/services/Progress.js"
import { ReferenceIndexLive } from "../../src/services/ReferenceIndex.js"
import { ReportsLive } from "../../src/services/Reports.js"
import { captureConsole } from "./console.js"

/** The live layers, as main.ts composes them, configured from `environment` (integration tests). */
export const liveLayers = (environment: Record<string, string>) =>
  Layer.mergeAll(DatabaseLive, CloudinaryLive, MailerLive, ProgressInMemory([])).pipe(
    Layer.provideMerge(Layer.mergeAll(ReportsLive, ReferenceIndexLive).pipe(Layer.provideMerge(MigrationsLive.pipe(Layer.provideMerge(PgLive))))),
    Layer.provideMerge(AppConfigLive),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(environment)))))
  )

export type LiveServices = Layer.Layer.Success<ReturnType<typeof liveLayers>>

/** Runs a job on the live layers and returns its result with every console line it printed. */
export const runLive = async <A, E>(environment: Record<string, string>, job: Effect.Effect<A, E, LiveServices | Scope.Scope>) => {
  const lines: Array<string> = []
  const result = await Effect.runPromise(
    job.pipe(Effect.provide(liveLayers(environment)), Effect.withConsole(captureConsole(lines)), Effect.scoped)
  )
  return { result, lines, output: lines.join("\n") }
}
