import { createServer, type Server } from 'node:net'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { cleanup, expectCliError, kitsync, kitsyncOk, makeHome } from '../helpers/cli.js'

/**
 * Issue 23, rough edges: `peer start --listen` on a port another process holds printed
 * INVALID_ARGUMENT with libp2p's advice (`transportManager.faultTolerance`) and a Node stack
 * trace. It must be one line, PORT_IN_USE, naming the address. The port is held by a plain TCP
 * server of this test, on loopback.
 */

const servers: Server[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
})
afterAll(cleanup)

async function holdPort(): Promise<number> {
  const server = createServer()
  servers.push(server)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return (server.address() as { port: number }).port
}

describe('a listen port another process holds', () => {
  it.each(['peer start', 'pair'])('%s: PORT_IN_USE naming the address, one line, exit 7', async (command) => {
    const home = await makeHome()
    await kitsyncOk(home, ['init'])
    const port = await holdPort()
    const addr = `/ip4/127.0.0.1/tcp/${port}`
    const r = await kitsync(home, [...command.split(' '), '--listen', addr, '--no-mdns'])
    const message = expectCliError(r, 'PORT_IN_USE', 7)
    expect(message).toContain(addr)
    expect(r.stderr).not.toMatch(/faultTolerance|\n\s+at /)
  })
})
