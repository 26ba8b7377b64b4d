import { Config, ConfigError, Context, Duration, Either, Layer, Option, Redacted } from "effect"
import type { RetentionPolicy } from "../domain/retention.js"

/**
 * Every setting of the program, read once at start-up through Effect `Config` and validated there,
 * so a bad value stops the run before anything is touched. Secrets stay `Redacted`.
 */
export interface CloudinaryCredentials {
  readonly cloudName: string
  readonly apiKey: string
  readonly apiSecret: Redacted.Redacted<string>
  /** Base URL of the API; `upload_prefix` in CLOUDINARY_URL, as the SDK reads it. */
  readonly uploadPrefix: string
}

export type PremiumTierSource =
  | { readonly kind: "none" }
  | { readonly kind: "column"; readonly table: string; readonly column: string; readonly userColumn: string }

export interface RetryPolicy {
  readonly maxRetries: number
  readonly maxElapsed: Duration.Duration
}

export interface AppConfigShape {
  readonly databaseUrl: Redacted.Redacted<string>
  readonly cloudinary: CloudinaryCredentials
  readonly smtpUrl: Option.Option<Redacted.Redacted<string>>
  readonly adminEmails: ReadonlyArray<string>
  readonly fromEmail: string
  readonly retention: RetentionPolicy
  readonly premiumTier: PremiumTierSource
  readonly cleanupBatchSize: number
  readonly cloudinaryTimeout: Duration.Duration
  readonly retry: RetryPolicy
  readonly orphanGracePeriod: Duration.Duration
  readonly apiQuotaReserve: number
  readonly reportsDir: string
  /** A run stops cleanly, as partial, once it has run this long (Heroku kills a scheduler job at 10 minutes). */
  readonly runTimeBudget: Duration.Duration
}

export class AppConfig extends Context.Tag("promptflow/AppConfig")<AppConfig, AppConfigShape>() {}

const invalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

export const parseCloudinaryUrl = (raw: string): Either.Either<CloudinaryCredentials, string> => {
  if (!raw.startsWith("cloudinary://")) return Either.left("must start with cloudinary://")
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return Either.left("is not a valid URL (expected cloudinary://API_KEY:API_SECRET@CLOUD_NAME)")
  }
  const apiKey = decodeURIComponent(url.username)
  const apiSecret = decodeURIComponent(url.password)
  const cloudName = url.hostname
  if (apiKey === "" || apiSecret === "" || cloudName === "") {
    return Either.left("needs an API key, an API secret and a cloud name (cloudinary://API_KEY:API_SECRET@CLOUD_NAME)")
  }
  const uploadPrefix = url.searchParams.get("upload_prefix") ?? "https://api.cloudinary.com"
  if (!/^https?:\/\/[^/\s]+/.test(uploadPrefix)) {
    return Either.left("has an upload_prefix that is not an http:// or https:// URL")
  }
  return Either.right({
    cloudName,
    apiKey,
    apiSecret: Redacted.make(apiSecret),
    uploadPrefix: uploadPrefix.replace(/\/+$/, "")
  })
}

const EMAIL = /^[^\s@,<>"]+@[^\s@,<>"]+\.?[^\s@,<>"]*$/
const NAMED_EMAIL = /^[^<>]*<([^\s@,<>"]+@[^\s@,<>"]+)>$/

export const isEmailAddress = (value: string): boolean => EMAIL.test(value)

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

export const parsePremiumTierSource = (
  raw: string,
  userColumn: string
): Either.Either<PremiumTierSource, string> => {
  const value = raw.trim()
  if (value === "" || value.toLowerCase() === "none") return Either.right({ kind: "none" })
  const parts = value.split(".")
  if (parts.length < 2 || parts.length > 3 || !parts.every((part) => IDENTIFIER.test(part))) {
    return Either.left("must be none, table.column or schema.table.column (letters, digits and _ only)")
  }
  if (!IDENTIFIER.test(userColumn)) return Either.left("PREMIUM_TIER_USER_COLUMN must be a plain column name")
  const column = parts.pop()!
  return Either.right({ kind: "column", table: parts.join("."), column, userColumn })
}

/** DATABASE_URL alone: what commands that only read the program's records need. */
export const databaseUrl = Config.redacted("DATABASE_URL").pipe(
  Config.mapOrFail((url) => {
    const value = Redacted.value(url)
    if (!/^postgres(ql)?:\/\//.test(value)) {
      return Either.left(invalid("DATABASE_URL", "must start with postgres:// or postgresql://"))
    }
    try {
      new URL(value)
    } catch {
      return Either.left(invalid("DATABASE_URL", "is not a valid URL"))
    }
    return Either.right(url)
  })
)

const cloudinary = Config.redacted("CLOUDINARY_URL").pipe(
  Config.mapOrFail((url) =>
    parseCloudinaryUrl(Redacted.value(url)).pipe(Either.mapLeft((message) => invalid("CLOUDINARY_URL", message)))
  )
)

const smtpUrl = Config.option(
  Config.redacted("SMTP_URL").pipe(
    Config.mapOrFail((url) =>
      /^smtps?:\/\/[^/\s]+/.test(Redacted.value(url))
        ? Either.right(url)
        : Either.left(invalid("SMTP_URL", "must look like smtp://user:pass@host:587 or smtps://user:pass@host:465"))
    )
  )
)

const adminEmails = Config.string("ADMIN_EMAIL").pipe(
  Config.mapOrFail((raw) => {
    const addresses = raw.split(",").map((part) => part.trim()).filter((part) => part !== "")
    if (addresses.length === 0) return Either.left(invalid("ADMIN_EMAIL", "needs at least one address"))
    const bad = addresses.filter((address) => !isEmailAddress(address))
    return bad.length > 0
      ? Either.left(invalid("ADMIN_EMAIL", `is not a valid address: ${bad.join(", ")}`))
      : Either.right(addresses)
  })
)

const fromEmail = Config.string("DEFAULT_FROM_EMAIL").pipe(
  Config.withDefault("webmaster@localhost"),
  Config.validate({
    message: "DEFAULT_FROM_EMAIL must be an address, or Name <address>",
    validation: (value) => isEmailAddress(value.trim()) || NAMED_EMAIL.test(value.trim())
  })
)

const positiveInteger = (name: string, fallback: number, max: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a whole number from 1 to ${max}`, validation: (n) => n >= 1 && n <= max })
  )

const premiumTier = Config.all([
  Config.string("PREMIUM_TIER_SOURCE").pipe(Config.withDefault("none")),
  Config.string("PREMIUM_TIER_USER_COLUMN").pipe(Config.withDefault("user_id"))
]).pipe(
  Config.mapOrFail(([source, userColumn]) =>
    parsePremiumTierSource(source, userColumn).pipe(Either.mapLeft((message) => invalid("PREMIUM_TIER_SOURCE", message)))
  )
)

const retention = Config.all({
  freeDays: positiveInteger("TRASH_RETENTION_DAYS_FREE", 5, 3650),
  premiumDays: positiveInteger("TRASH_RETENTION_DAYS_PREMIUM", 30, 3650)
})

const positiveDuration = (name: string, fallback: string) =>
  Config.duration(name).pipe(
    Config.withDefault(Duration.decode(fallback as Duration.DurationInput)),
    Config.validate({ message: `${name} must be a positive duration such as "30 seconds"`, validation: (d) => Duration.toMillis(d) > 0 })
  )

export const appConfig: Config.Config<AppConfigShape> = Config.all({
  databaseUrl,
  cloudinary,
  smtpUrl,
  adminEmails,
  fromEmail,
  retention,
  premiumTier,
  cleanupBatchSize: positiveInteger("CLEANUP_BATCH_SIZE", 50, 100),
  cloudinaryTimeout: positiveDuration("CLOUDINARY_TIMEOUT", "30 seconds"),
  retry: Config.all({
    maxRetries: Config.integer("RETRY_MAX_ATTEMPTS").pipe(
      Config.withDefault(4),
      Config.validate({ message: "RETRY_MAX_ATTEMPTS must be a whole number from 0 to 10", validation: (n) => n >= 0 && n <= 10 })
    ),
    maxElapsed: positiveDuration("RETRY_MAX_ELAPSED", "2 minutes")
  }),
  orphanGracePeriod: Config.duration("ORPHAN_GRACE_PERIOD").pipe(Config.withDefault(Duration.hours(24))),
  apiQuotaReserve: Config.integer("API_QUOTA_RESERVE").pipe(
    Config.withDefault(25),
    Config.validate({ message: "API_QUOTA_RESERVE must be a whole number of at least 0", validation: (n) => n >= 0 })
  ),
  reportsDir: Config.string("REPORTS_DIR").pipe(Config.withDefault("reports")),
  runTimeBudget: positiveDuration("RUN_TIME_BUDGET", "9 minutes")
})

/** The live layer: reads the environment (or whatever ConfigProvider is current). */
export const AppConfigLive = Layer.effect(AppConfig, appConfig)

/** Defaults suited to tests; override what a test cares about. */
export const testAppConfig = (overrides: Partial<AppConfigShape> = {}): AppConfigShape => ({
  databaseUrl: Redacted.make("postgres://test@127.0.0.1:5432/test"),
  cloudinary: {
    cloudName: "demo",
    apiKey: "key",
    apiSecret: Redacted.make("secret"),
    uploadPrefix: "http://127.0.0.1:1"
  },
  smtpUrl: Option.none(),
  adminEmails: ["admin@example.com"],
  fromEmail: "webmaster@localhost",
  retention: { freeDays: 5, premiumDays: 30 },
  premiumTier: { kind: "none" },
  cleanupBatchSize: 50,
  cloudinaryTimeout: Duration.seconds(5),
  retry: { maxRetries: 3, maxElapsed: Duration.seconds(30) },
  orphanGracePeriod: Duration.hours(24),
  apiQuotaReserve: 25,
  reportsDir: "reports",
  runTimeBudget: Duration.minutes(9),
  ...overrides
})

export const AppConfigTest = (overrides: Partial<AppConfigShape> = {}) =>
  Layer.succeed(AppConfig, AppConfig.of(testAppConfig(overrides)))

/** One line per problem, never the offending value: a value may be a secret. */
export const describeConfigError = (error: ConfigError.ConfigError): string => {
  const lines: Array<string> = []
  const walk = (e: ConfigError.ConfigError): void => {
    switch (e._op) {
      case "And":
      case "Or":
        walk(e.left)
        walk(e.right)
        return
      case "MissingData":
        lines.push(`${e.path.join(".")} is not set`)
        return
      case "InvalidData": {
        const where = e.path.join(".")
        lines.push(where === "" ? e.message : e.message.startsWith("Expected") ? `${where}: ${e.message}` : `${where} ${e.message}`)
        return
      }
      case "SourceUnavailable":
      case "Unsupported":
        lines.push(`${e.path.join(".")}: ${e.message}`)
        return
    }
  }
  walk(error)
  return [...new Set(lines)].join("; ")
}
