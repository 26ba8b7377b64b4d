import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** The project root, found from this file whether it runs from src/ (tests) or dist/src/ (the bin). */
export const projectRoot = (): string => {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error("package.json not found above " + fileURLToPath(import.meta.url))
    dir = parent
  }
  return dir
}

/** PromptFlow's table layout as Django makes it (copied from shared/fixtures). */
export const fixtureSchemaPath = (): string => join(projectRoot(), "fixtures", "promptflow-schema.sql")
