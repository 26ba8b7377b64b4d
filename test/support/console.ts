import { Console, Effect } from "effect"

/** A Console that records every line instead of printing it. */
export const captureConsole = (lines: Array<string>): Console.Console => {
  const record = (...args: ReadonlyArray<unknown>) => void lines.push(args.map(String).join(" "))
  const unsafe = new Proxy({}, { get: () => record }) as Console.UnsafeConsole
  const base: Record<PropertyKey, unknown> = {
    [Console.TypeId]: Console.TypeId,
    clear: Effect.void,
    groupEnd: Effect.void,
    unsafe
  }
  return new Proxy(base, {
    get: (target, key) => (key in target ? target[key] : (...args: ReadonlyArray<unknown>) => Effect.sync(() => record(...args)))
  }) as unknown as Console.Console
}
