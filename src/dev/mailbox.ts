import { simpleParser, type ParsedMail } from "mailparser"
import { SMTPServer } from "smtp-server"
import type { AddressInfo } from "node:net"

/**
 * A real SMTP server on loopback that receives, authenticates and parses what the program sends: the
 * tests' mail server, and `promptflow-maint dev mailbox` for watching the email arrive by hand.
 */
export interface TestSmtpServer {
  readonly port: number
  readonly messages: Array<ParsedMail & { envelopeTo: Array<string> }>
  readonly url: (user?: string, password?: string) => string
  readonly close: () => Promise<void>
}

export const startSmtpServer = async (
  options: { user?: string; password?: string; reject?: boolean; port?: number; onMessage?: (mail: ParsedMail) => void } = {}
): Promise<TestSmtpServer> => {
  const messages: TestSmtpServer["messages"] = []
  const server = new SMTPServer({
    secure: false,
    authOptional: options.user === undefined,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === options.user && auth.password === options.password) callback(null, { user: auth.username })
      else callback(new Error("Invalid username or password"))
    },
    onData(stream, session, callback) {
      if (options.reject === true) {
        stream.resume()
        stream.on("end", () => callback(new Error("Mailbox unavailable")))
        return
      }
      simpleParser(stream)
        .then((mail) => {
          messages.push(Object.assign(mail, { envelopeTo: session.envelope.rcptTo.map((r) => r.address) }))
          options.onMessage?.(mail)
          callback()
        })
        .catch(callback)
    }
  })
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve))
  const port = (server.server.address() as AddressInfo).port
  return {
    port,
    messages,
    url: (user = options.user, password = options.password) =>
      user !== undefined ? `smtp://${encodeURIComponent(user)}:${encodeURIComponent(password ?? "")}@127.0.0.1:${port}` : `smtp://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
