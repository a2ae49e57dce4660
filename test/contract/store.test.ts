import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { MemoryLevel } from 'memory-level'
import type { BinaryLevel } from '../../src/store/level.js'
import { openLevel } from '../../src/store/level.js'
import { SnapshotFiles } from '../../src/store/snapshot-files.js'
import { derivedRowsContract } from './derived-rows-contract.js'
import { indexRowsContract } from './index-rows-contract.js'
import { storeContract, type StoreFixture } from './store-contract.js'

const memory: StoreFixture = {
  async create() {
    const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' })
    await db.open()
    return db as unknown as BinaryLevel
  },
  async reopen(db) {
    if (db.status !== 'closed') await db.close()
    await db.open()
    return db
  },
}
storeContract('memory-level', memory)
derivedRowsContract('memory-level', memory)
indexRowsContract('memory-level', memory)

const dirs: string[] = []
const dirOf = new WeakMap<BinaryLevel, string>()
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

/** LevelDB in a temp folder (reopened from the same folder). */
const leveldb: StoreFixture = {
  async create() {
    const dir = await mkdtemp(join(tmpdir(), 'kitsync-store-'))
    dirs.push(dir)
    const db = await openLevel(join(dir, 'db'))
    dirOf.set(db, dir)
    return db
  },
  async reopen(db) {
    const dir = dirOf.get(db) as string
    if (db.status !== 'closed') await db.close()
    const again = await openLevel(join(dir, 'db'))
    dirOf.set(again, dir)
    return again
  },
}

storeContract('LevelDB', leveldb)
derivedRowsContract('LevelDB', leveldb)
indexRowsContract('LevelDB', leveldb)

// The home folder's layout: snapshots as files beside LevelDB (here every one, whatever its size).
storeContract('LevelDB with snapshot files', {
  ...leveldb,
  snapshotFiles: (db) => new SnapshotFiles(join(dirOf.get(db) as string, 'snapshots'), 1),
})
