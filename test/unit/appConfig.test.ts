import { ConfigProvider, Effect, Either, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { appConfig, describeConfigError, parseCloudinaryUrl, parsePremiumTierSource } from "../../src/services/AppConfig.js"

const load = (env: Record<string, string>) =>
  Effect.runSync(
    Effect.either(appConfig).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
  )

const valid = {
  DATABASE_URL: "postgres://app:dbsecret@db.example:5432/promptflow",
  CLOUDINARY_URL: "cloudinary://123:cloudsecret@mycloud",
  ADMIN_EMAIL: "ops@example.com"
}

describe("configuration", () => {
  it("reads the defaults of the original", () => {
    const config = Either.getOrThrow(load(valid))
    expect(config.retention).toEqual({ freeDays: 5, premiumDays: 30 })
    expect(config.premiumTier).toEqual({ kind: "none" })
    expect(config.fromEmail).toBe("webmaster@localhost")
    expect(Option.isNone(config.smtpUrl)).toBe(true)
    expect(config.cloudinary).toMatchObject({ cloudName: "mycloud", apiKey: "123", uploadPrefix: "https://api.cloudinary.com" })
    expect(Redacted.value(config.cloudinary.apiSecret)).toBe("cloudsecret")
  })

  it("reads a comma-separated admin list and a premium column", () => {
    const config = Either.getOrThrow(
      load({
        ...valid,
        ADMIN_EMAIL: "a@example.com, b@example.com",
        PREMIUM_TIER_SOURCE: "billing.subscription.is_premium",
        PREMIUM_TIER_USER_COLUMN: "account_id",
        TRASH_RETENTION_DAYS_FREE: "7"
      })
    )
    expect(config.adminEmails).toEqual(["a@example.com", "b@example.com"])
    expect(config.premiumTier).toEqual({ kind: "column", table: "billing.subscription", column: "is_premium", userColumn: "account_id" })
    expect(config.retention.freeDays).toBe(7)
  })

  it("honours upload_prefix, http included", () => {
    const parsed = Either.getOrThrow(parseCloudinaryUrl("cloudinary://k:s@c?upload_prefix=http://127.0.0.1:9999/"))
    expect(parsed.uploadPrefix).toBe("http://127.0.0.1:9999")
  })

  it.each([
    [{}, "DATABASE_URL is not set"],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL must start with postgres://"],
    [{ CLOUDINARY_URL: "https://k:s@c" }, "CLOUDINARY_URL must start with cloudinary://"],
    [{ CLOUDINARY_URL: "cloudinary://onlykey@c" }, "CLOUDINARY_URL needs an API key, an API secret and a cloud name"],
    [{ CLOUDINARY_URL: "cloudinary://k:s@c?upload_prefix=ftp://x" }, "upload_prefix that is not an http"],
    [{ ADMIN_EMAIL: "not-an-address" }, "ADMIN_EMAIL is not a valid address: not-an-address"],
    [{ ADMIN_EMAIL: " , " }, "ADMIN_EMAIL needs at least one address"],
    [{ SMTP_URL: "http://mail" }, "SMTP_URL must look like smtp://"],
    [{ PREMIUM_TIER_SOURCE: "users; DROP TABLE x" }, "PREMIUM_TIER_SOURCE must be none, table.column"],
    [{ TRASH_RETENTION_DAYS_FREE: "0" }, "TRASH_RETENTION_DAYS_FREE"]
  ])("rejects %j with a clear message", (override, expected) => {
    const env: Record<string, string> = { ...valid, ...override }
    if (Object.keys(override).length === 0) delete env["DATABASE_URL"]
    const result = load(env)
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) expect(describeConfigError(result.left)).toContain(expected)
  })

  it("never puts a secret in an error message", () => {
    const result = load({ ...valid, CLOUDINARY_URL: "cloudinary://key:topsecret@", SMTP_URL: "ftp://u:mailsecret@x" })
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) {
      const message = describeConfigError(result.left)
      expect(message).not.toContain("topsecret")
      expect(message).not.toContain("mailsecret")
    }
  })

  it("validates premium tier identifiers", () => {
    expect(Either.isLeft(parsePremiumTierSource("profile.is_premium", "user id"))).toBe(true)
    expect(Either.getOrThrow(parsePremiumTierSource("none", "user_id"))).toEqual({ kind: "none" })
  })
})
