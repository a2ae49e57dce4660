// A folder of FILES text files of SIZE bytes (default 10,000 x 10 KB = 100 MB) in DIRS
// directories: full scan (cold, then with the previous scan's hashes), the watcher's start
// (watches + scan), and the latency from a write to the watcher's change, p50/p99 over
// WRITES writes. Run after `npm run build`:  node --expose-gc scripts/experiments/folders/scan.mjs
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadSelection, scanFolder } from '../../../dist/folder/scan.js'
import { FolderWatcher } from '../../../dist/folder/folder-watcher.js'

const FILES = Number(process.env.FILES ?? 10_000)
const SIZE = Number(process.env.SIZE ?? 10_000)
const DIRS = Number(process.env.DIRS ?? 100)
const WRITES = Number(process.env.WRITES ?? 200)

const root = await mkdtemp(join(tmpdir(), 'ks-fold-scan-'))
const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]
const rss = () => Math.round(process.memoryUsage().rss / 1e6)
try {
  const line = 'x'.repeat(79) + '\n'
  const body = line.repeat(Math.ceil(SIZE / 80)).slice(0, SIZE)
  for (let d = 0; d < DIRS; d++) await mkdir(join(root, `dir${d}`, 'sub'), { recursive: true })
  for (let i = 0; i < FILES; i++) await writeFile(join(root, `dir${i % DIRS}`, i % 2 ? 'sub' : '', `file${i}.yaml`), `id: ${i}\n${body}`)
  globalThis.gc?.()
  const rss0 = rss()
  const heap0 = process.memoryUsage().heapUsed
  const sel = await loadSelection(root)
  let t = performance.now()
  const cold = await scanFolder(root, sel)
  const coldMs = performance.now() - t
  t = performance.now()
  const warm = await scanFolder(root, sel, cold.files)
  const warmMs = performance.now() - t
  globalThis.gc?.()
  console.log(
    JSON.stringify({
      files: cold.files.size,
      dirs: cold.dirs.size,
      mb: Math.round((FILES * SIZE) / 1e6),
      coldScanMs: Math.round(coldMs),
      warmScanMs: Math.round(warmMs),
      warmFiles: warm.files.size,
      rssBeforeMB: rss0,
      rssAfterMB: rss(),
      heapOfTwoScansMB: Math.round((process.memoryUsage().heapUsed - heap0) / 1e6),
    }),
  )

  const watcher = new FolderWatcher(root)
  t = performance.now()
  await watcher.start()
  const startMs = performance.now() - t
  const latencies = []
  for (let i = 0; i < WRITES; i++) {
    const path = `dir${i % DIRS}/${i % 2 ? 'sub/' : ''}file${i}.yaml`
    const seen = new Promise((resolve) => {
      const off = watcher.on('changes', (batch) => {
        if (!batch.some((c) => c.path === path && c.kind === 'modified')) return
        off()
        resolve(performance.now())
      })
    })
    const t0 = performance.now()
    await writeFile(join(root, path), `id: ${i} changed\n${body}`)
    latencies.push((await seen) - t0)
  }
  globalThis.gc?.()
  console.log(
    JSON.stringify({
      watcherStartMs: Math.round(startMs),
      watchedDirs: DIRS * 2 + 1,
      writes: WRITES,
      p50ms: +pct(latencies, 50).toFixed(1),
      p99ms: +pct(latencies, 99).toFixed(1),
      maxMs: +Math.max(...latencies).toFixed(1),
      rssWatchingMB: rss(),
    }),
  )
  await watcher.stop()
} finally {
  await rm(root, { recursive: true, force: true })
}
