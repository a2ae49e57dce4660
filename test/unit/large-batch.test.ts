import { MemoryLevel } from 'memory-level'
import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { RecordCollection } from '../../src/core/record-collection.js'
import { LocalWorkspace } from '../../src/daemon/local-workspace.js'
import type { BinaryLevel } from '../../src/store/level.js'

const open: LocalWorkspace[] = []
const INFO = { home: '', deviceId: '12D3KooWLargeBatchDevA1', workspaceId: 'ws', name: 'n', version: '0' }

async function device(db: BinaryLevel): Promise<LocalWorkspace> {
  const ws = await LocalWorkspace.fromDatabase(db, INFO)
  open.push(ws)
  return ws
}

afterEach(async () => {
  for (const ws of open.splice(0)) await ws.close()
})

describe('one transaction of many records', () => {
  // 70,000 records merged in one remote transaction derive about 210,000 rows (index and
  // history) for one LevelDB batch: more than a function call takes as spread arguments.
  it('stores a remote update of 70,000 records with all its derived rows', async () => {
    const db = new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as BinaryLevel
    const ws = await device(db)
    await ws.set('big', 'seed', { n: -1 })
    const source = new Y.Doc()
    const records = new RecordCollection('big', source)
    source.transact(() => {
      for (let i = 0; i < 70_000; i++) records.set(`k${i}`, { n: i }, 'local')
    })
    Y.applyUpdate(await ws.openDoc('big'), Y.encodeStateAsUpdate(source), 'remote')
    await ws.flushDoc('big')
    await ws.close()
    await db.open()
    const again = await device(db)
    expect(await again.get('big', 'k69999')).toEqual({ n: 69_999 })
    expect(Object.keys(await again.getAll('big'))).toHaveLength(70_001)
    expect(await again.check('big')).toMatchObject([{ collection: 'big' }])
  }, 120_000)
})
