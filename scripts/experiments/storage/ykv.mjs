// A minimal YKeyValue (the layout of y-utility's YKeyValue, re-implemented here because
// y-utility is not a dependency): entries {key, val} in one Y.Array; a set deletes the
// key's old entry and pushes a new one, so a writer's deleted entries merge into GC ranges.
// Concurrent sets of one key: the entry further right wins (y-utility's rule); the loser is
// deleted by the first device that sees both.
import * as Y from 'yjs'

export class YKV {
  constructor(arr) {
    this.arr = arr
    this.map = new Map()
    const arrItems = arr.toArray()
    const dups = []
    for (let i = arrItems.length - 1; i >= 0; i--) {
      const e = arrItems[i]
      if (this.map.has(e.key)) dups.push(i)
      else this.map.set(e.key, e)
    }
    if (dups.length > 0)
      arr.doc.transact(() => {
        for (const i of dups) arr.delete(i, 1)
      })
    arr.observe((event) => {
      // keep the map in step and drop duplicate keys (concurrent sets)
      const added = []
      event.changes.added.forEach((item) => item.content.getContent().forEach((e) => added.push(e)))
      event.changes.deleted.forEach((item) =>
        item.content.getContent().forEach((e) => {
          if (this.map.get(e.key) === e) this.map.delete(e.key)
        }),
      )
      if (added.length === 0) return
      const vals = arr.toArray()
      const last = new Map()
      const toDelete = []
      for (let i = vals.length - 1; i >= 0; i--) {
        const e = vals[i]
        if (last.has(e.key)) toDelete.push(i)
        else last.set(e.key, e)
      }
      for (const e of added) if (last.get(e.key) === e) this.map.set(e.key, e)
      if (toDelete.length > 0)
        arr.doc.transact(() => {
          for (const i of toDelete) arr.delete(i, 1)
        })
    })
  }
  get(key) {
    return this.map.get(key)?.val
  }
  set(key, val) {
    const arr = this.arr
    arr.doc.transact(() => {
      if (this.map.has(key)) {
        // find the old entry; a linear scan, as y-utility does
        const vals = arr.toArray()
        for (let i = 0; i < vals.length; i++)
          if (vals[i].key === key) {
            arr.delete(i, 1)
            break
          }
      }
      arr.push([{ key, val }])
    })
  }
}

export function newYkv(doc = new Y.Doc()) {
  return new YKV(doc.getArray('kv'))
}
