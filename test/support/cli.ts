import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { projectRoot } from "../../src/dev/paths.js"

/** Runs the built bin as an operator would, with exactly this environment. */
export const runBin = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const bin = join(projectRoot(), "dist", "src", "main.js")
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run the tests with \`npm test\`, which builds first`)
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env["PATH"] ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })
}
