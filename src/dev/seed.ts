import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { fixtureSchemaPath } from "./paths.js"

/**
 * Rows for the demo and the integration tests, written the way Django would: every NOT NULL column
 * filled (the schema has no database defaults), dependents through their real foreign keys.
 */
const DAY_MS = 86_400_000

export const loadFixtureSchema = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(readFileSync(fixtureSchemaPath(), "utf8"))
})

export const insertUser = (username: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ id: number }>`
      INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
      VALUES ('!', false, ${username}, ${username}, '', ${`${username}@example.com`}, false, true, now())
      RETURNING id`
    return rows[0]!.id
  })

export interface PromptSeed {
  readonly title: string
  readonly authorId: number
  readonly featuredImage?: string | null
  readonly featuredVideo?: string | null
  /** null: a live prompt; otherwise when it was trashed. */
  readonly deletedAt?: Date | null
}

let slugCounter = 0

export const insertPrompt = (seed: PromptSeed) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const deletedAt = seed.deletedAt ?? null
    slugCounter++
    const rows = yield* sql<{ id: string }>`
      INSERT INTO prompts_prompt (title, slug, content, excerpt, author_id, status, ai_generator, "order",
        created_on, updated_on, moderation_status, requires_manual_review, review_notes, deletion_reason,
        featured_image, featured_video, deleted_at, deleted_by_id, original_status)
      VALUES (${seed.title}, ${`${seed.title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}-${slugCounter}-${Date.now()}`},
        'A prompt', 'A prompt', ${seed.authorId}, ${deletedAt === null ? 1 : 0}, 'midjourney', 0,
        now(), now(), 'approved', false, '', ${deletedAt === null ? "" : "user"},
        ${seed.featuredImage ?? null}, ${seed.featuredVideo ?? null}, ${deletedAt},
        ${deletedAt === null ? null : seed.authorId}, ${deletedAt === null ? null : 1})
      RETURNING id`
    return Number(rows[0]!.id)
  })

/** Likes, a comment, a moderation log with a content flag, and two tags: what Django cascades. */
export const addDependents = (promptId: number, userId: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO prompts_prompt_likes (prompt_id, user_id) VALUES (${promptId}, ${userId})`
    yield* sql`INSERT INTO prompts_comment (body, approved, created_on, author_id, prompt_id) VALUES ('Nice', true, now(), ${userId}, ${promptId})`
    const logs = yield* sql<{ id: string }>`
      INSERT INTO prompts_moderationlog (service, status, confidence_score, flagged_categories, raw_response, moderated_at, notes, prompt_id, severity, explanation)
      VALUES ('openai', 'approved', 0.1, '[]'::jsonb, '{}'::jsonb, now(), '', ${promptId}, 'low', '') RETURNING id`
    yield* sql`INSERT INTO prompts_contentflag (category, confidence, details, severity, created_at, moderation_log_id)
      VALUES ('none', 0.1, '{}'::jsonb, 'low', now(), ${logs[0]!.id})`
    for (const name of [`tag-${promptId}-a`, `tag-${promptId}-b`]) {
      const tags = yield* sql<{ id: number }>`INSERT INTO taggit_tag (name, slug) VALUES (${name}, ${name}) RETURNING id`
      yield* sql`INSERT INTO taggit_taggeditem (object_id, content_type_id, tag_id)
        VALUES (${promptId}, (SELECT id FROM django_content_type WHERE app_label = 'prompts' AND model = 'prompt'), ${tags[0]!.id})`
    }
  })

/** How many rows still point at a prompt, over every dependent table. */
export const countDependents = (promptId: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: string }>`
      SELECT (SELECT count(*) FROM prompts_prompt_likes WHERE prompt_id = ${promptId})
           + (SELECT count(*) FROM prompts_comment WHERE prompt_id = ${promptId})
           + (SELECT count(*) FROM prompts_moderationlog WHERE prompt_id = ${promptId})
           + (SELECT count(*) FROM prompts_contentflag f JOIN prompts_moderationlog m ON m.id = f.moderation_log_id WHERE m.prompt_id = ${promptId})
           + (SELECT count(*) FROM taggit_taggeditem WHERE object_id = ${promptId}
                AND content_type_id = (SELECT id FROM django_content_type WHERE app_label = 'prompts' AND model = 'prompt')) AS n`
    return Number(rows[0]!.n)
  })

export const promptExists = (promptId: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql`SELECT 1 FROM prompts_prompt WHERE id = ${promptId}`
    return rows.length > 0
  })

/** A demo subscription table that PREMIUM_TIER_SOURCE can point at (PromptFlow itself has none). */
export const DEMO_PREMIUM_TABLE = "demo_subscription"

export interface DemoAsset {
  readonly publicId: string
  readonly resourceType: "image" | "video"
  readonly createdAt: Date
  readonly bytes: number
}

export interface DemoData {
  readonly assets: ReadonlyArray<DemoAsset>
  readonly premiumSource: string
}

/** The Cloudinary side of the demo: referenced, shared, trashed-only, orphaned and freshly uploaded files. */
export const demoAssets = (now: Date): ReadonlyArray<DemoAsset> => {
  const ago = (days: number) => new Date(now.getTime() - days * DAY_MS)
  return [
    { publicId: "prompts/sunset", resourceType: "image", createdAt: ago(40), bytes: 245_000 },
    { publicId: "legacy_poster", resourceType: "image", createdAt: ago(200), bytes: 512_000 },
    { publicId: "prompts/recent_trash", resourceType: "image", createdAt: ago(3), bytes: 120_000 },
    { publicId: "prompts/premium_keep", resourceType: "image", createdAt: ago(12), bytes: 330_000 },
    { publicId: "prompts/old_cat", resourceType: "image", createdAt: ago(15), bytes: 180_000 },
    { publicId: "clips/dance", resourceType: "video", createdAt: ago(60), bytes: 8_400_000 },
    { publicId: "uploads/abandoned_upload", resourceType: "image", createdAt: ago(2), bytes: 95_000 },
    { publicId: "uploads/abandoned_clip", resourceType: "video", createdAt: ago(5), bytes: 3_100_000 },
    { publicId: "uploads/in_progress", resourceType: "image", createdAt: new Date(now.getTime() - 30 * 60_000), bytes: 88_000 },
    { publicId: "archive/very_old_orphan", resourceType: "image", createdAt: ago(120), bytes: 410_000 }
  ]
}

/** A realistic small PromptFlow: live and trashed prompts of all ages and both tiers, shared and missing assets, orphans. */
export const seedDemo = (now: Date) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const ago = (days: number) => new Date(now.getTime() - days * DAY_MS)
    const alice = yield* insertUser("alice")
    const bob = yield* insertUser("bob")
    const carol = yield* insertUser("carol")
    yield* sql.unsafe(`CREATE TABLE ${DEMO_PREMIUM_TABLE} (user_id integer PRIMARY KEY, is_premium boolean NOT NULL)`)
    yield* sql`INSERT INTO ${sql(DEMO_PREMIUM_TABLE)} (user_id, is_premium) VALUES (${alice}, false), (${bob}, true), (${carol}, false)`

    yield* insertPrompt({ title: "Sunset over the bay", authorId: alice, featuredImage: "image/upload/v1712345678/prompts/sunset.jpg" })
    yield* insertPrompt({ title: "Legacy poster", authorId: carol, featuredImage: "legacy_poster" })
    yield* insertPrompt({ title: "Trashed yesterday", authorId: alice, featuredImage: "image/upload/prompts/recent_trash", deletedAt: ago(1) })
    yield* insertPrompt({ title: "Premium, trashed 10 days ago", authorId: bob, featuredImage: "image/upload/prompts/premium_keep", deletedAt: ago(10) })
    const expiredFree = yield* insertPrompt({ title: "Old cat picture", authorId: alice, featuredImage: "image/upload/prompts/old_cat", deletedAt: ago(9) })
    yield* addDependents(expiredFree, carol)
    const expiredPremium = yield* insertPrompt({ title: "Dance clip", authorId: bob, featuredVideo: "video/upload/v1700000000/clips/dance.mp4", deletedAt: ago(45) })
    yield* addDependents(expiredPremium, alice)
    yield* insertPrompt({ title: "Sunset copy", authorId: carol, featuredImage: "image/upload/v1712345678/prompts/sunset.jpg", deletedAt: ago(7) })
    yield* insertPrompt({ title: "Placeholder era prompt", authorId: carol, featuredImage: "placeholder", deletedAt: ago(20) })
    yield* insertPrompt({ title: "Already gone from Cloudinary", authorId: alice, featuredImage: "image/upload/prompts/vanished", deletedAt: ago(6) })
    yield* insertPrompt({ title: "Missing on Cloudinary", authorId: carol, featuredImage: "image/upload/prompts/never_uploaded" })

    return { assets: demoAssets(now), premiumSource: `${DEMO_PREMIUM_TABLE}.is_premium` } satisfies DemoData
  })
