/**
 * Text files on three devices under random delivery (seeded): each device edits its own lines
 * (line i belongs to device i mod 3) and saves now and then, captured at once or only when a
 * peer's update arrives; a merged update is written out at once or later, so a save is often
 * made on older text than the document's (the rebase path). Updates reach each device in random
 * order and at random times. At the end, after everything is delivered, every device holds the same text,
 * and each line is what its owner last wrote: no edit of a different line is lost or doubled.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { captureText, currentBase, fileText, newTextFileDoc } from '../../src/core/folder-text-doc.js'

function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const LINES = 24
const DEVICES = 3

interface Device {
  doc: Y.Doc
  /** What the file on disk holds, and the snapshot of the document it was last in step with. */
  disk: string
  base: Uint8Array
  /** Updates not delivered to this device yet. */
  inbox: Uint8Array[]
}

describe('text files under random delivery', () => {
  it.each(Array.from({ length: 20 }, (_, i) => i + 1))('seed %i: all devices converge and keep every line edit', (seed) => {
    const rand = prng(seed)
    const initial = Array.from({ length: LINES }, (_, i) => `line ${i} initial`).join('\n') + '\n'
    const first = newTextFileDoc()
    captureText(first, initial, { device: 'dev0', stamp: '000000001.0000.dev0' })
    const devices: Device[] = Array.from({ length: DEVICES }, () => {
      const doc = newTextFileDoc()
      Y.applyUpdate(doc, Y.encodeStateAsUpdate(first))
      return { doc, disk: initial, base: currentBase(doc), inbox: [] }
    })
    devices.forEach((d, k) =>
      d.doc.on('update', (u: Uint8Array, origin: unknown) => {
        if (origin === 'peer') return
        devices.forEach((other, j) => j !== k && other.inbox.push(u))
      }),
    )
    const expected = initial.split('\n')
    let clock = 10
    const save = (k: number, captureNow: boolean): void => {
      const d = devices[k] as Device
      const lines = d.disk.split('\n')
      const own = Array.from({ length: LINES }, (_, i) => i).filter((i) => i % DEVICES === k)
      const line = own[Math.floor(rand() * own.length)] as number
      const value = `line ${line} by dev${k} #${clock}`
      lines[line] = value
      expected[line] = value
      d.disk = lines.join('\n')
      if (captureNow) capture(k)
    }
    const capture = (k: number): void => {
      const d = devices[k] as Device
      const r = captureText(d.doc, d.disk, { device: `dev${k}`, stamp: `${(clock++).toString(36).padStart(9, '0')}.0000.dev${k}` }, { base: d.base })
      d.base = r.base
    }
    const deliver = (k: number): void => {
      const d = devices[k] as Device
      if (d.inbox.length === 0) return
      // A save on disk not captured yet is captured before the update applies (as applyRemoteText does).
      capture(k)
      const i = Math.floor(rand() * d.inbox.length)
      Y.applyUpdate(d.doc, d.inbox.splice(i, 1)[0] as Uint8Array, 'peer')
      // Half the time the merged text is not written out yet: the user's next save is made on
      // the older text on disk, and its capture must rebase it from the base.
      if (rand() < 0.5) writeOut(k)
    }
    const writeOut = (k: number): void => {
      const d = devices[k] as Device
      capture(k) // a save that landed first is captured before the write (changed-under-us)
      d.disk = fileText(d.doc)
      d.base = currentBase(d.doc)
    }
    for (let step = 0; step < 200; step++) {
      const k = Math.floor(rand() * DEVICES)
      const r = rand()
      if (r < 0.35) save(k, true)
      else if (r < 0.5) save(k, false)
      else if (r < 0.6) writeOut(k)
      else deliver(k)
    }
    for (let k = 0; k < DEVICES; k++) capture(k)
    // Bounded: a capture that undid a peer's edit would answer every delivery with a new update.
    for (let round = 0; devices.some((d) => d.inbox.length > 0); round++) {
      if (round > 2_000) throw new Error('updates never stop: captures keep undoing each other')
      for (let k = 0; k < DEVICES; k++) deliver(k)
    }
    for (let k = 0; k < DEVICES; k++) writeOut(k)
    expect(devices.map((d) => d.disk)).toEqual(devices.map((d) => fileText(d.doc)))
    const texts = devices.map((d) => fileText(d.doc))
    expect(texts[1]).toBe(texts[0])
    expect(texts[2]).toBe(texts[0])
    expect(texts[0]).toBe(expected.join('\n'))
  })
})
