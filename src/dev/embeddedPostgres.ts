import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"

/**
 * PostgreSQL without a server: PGlite (Postgres compiled to WASM) behind a socket that speaks the wire
 * protocol, so the program still talks to it through `pg`. PGlite is a single backend session shared
 * by every connection: fine for the demo and for tests that do not need truly concurrent sessions.
 */
export interface EmbeddedPostgres {
  readonly url: string
  readonly close: () => Promise<void>
}

export const startEmbeddedPostgres = async (): Promise<EmbeddedPostgres> => {
  const db = await PGlite.create()
  const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1", maxConnections: 16 })
  await server.start()
  const address = String(server.getServerConn())
  const port = Number(address.split(":").pop())
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    close: async () => {
      await server.stop()
      await db.close()
    }
  }
}
