// kitsync benchmarks: `npm run bench` (builds first). Runs every section in SECTIONS, then
// writes bench-results/latest.json and bench-results/latest.md and prints a summary.
//
// A section is a module in scripts/bench/ exporting `id`, `title` and `async run(ctx)`, where
// ctx = { measure, note, tmp, log } (see scripts/bench/lib.js). Add one by appending its
// import to SECTIONS. `node scripts/bench.js foundation` (or `mesh`, `vps`, `workload`, `import`, `http`, `index`, `history`, `layout`, `storage`, `units`) runs only the named sections.
// BENCH_QUICK=1 shrinks the workloads (figures then do not compare with their targets);
// BENCH_STRICT=1 makes the exit status 1 when a figure fails or errs.
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { createRecorder, createTempDirs, errorText, formatNumber, ROOT, round, statusMark, targetText } from './bench/lib.js'

const SECTIONS = [
  () => import('./bench/foundation.js'),
  () => import('./bench/mesh.js'),
  () => import('./bench/vps.js'),
  () => import('./bench/workload.js'),
  () => import('./bench/import.js'),
  () => import('./bench/http.js'),
  () => import('./bench/index-rows.js'),
  () => import('./bench/history.js'),
  () => import('./bench/layout.js'),
  () => import('./bench/storage.js'),
  () => import('./bench/folders.js'),
  () => import('./bench/units.js'),
]

const OUT_DIR = join(ROOT, 'bench-results')

async function main() {
  const only = process.argv.slice(2)
  const startedAt = new Date()
  const started = performance.now()
  const cpuList = cpus()
  const report = {
    format: 'kitsync-bench',
    formatVersion: 1,
    date: startedAt.toISOString(),
    environment: {
      node: process.version,
      v8: process.versions.v8,
      platform: `${process.platform} ${process.arch}`,
      cpus: cpuList.length,
      cpuModel: cpuList[0]?.model?.trim() ?? 'unknown',
      memoryBytes: totalmem(),
      quick: process.env.BENCH_QUICK === '1',
    },
    kitsync: await kitsyncVersion(),
    sections: [],
    totals: {},
  }

  for (const load of SECTIONS) {
    let section
    const recorder = createRecorder()
    const tmp = createTempDirs()
    const entry = { id: '?', title: '?', figures: recorder.figures, notes: recorder.notes }
    const sectionStarted = performance.now()
    try {
      section = await load()
      entry.id = section.id
      entry.title = section.title
      if (only.length > 0 && !only.includes(section.id)) continue
      console.log(`\n== ${section.title}`)
      await section.run({ measure: recorder.measure, note: recorder.note, tmp, log: recorder.log })
    } catch (err) {
      // A section should record its own failures; this catches what escaped it.
      entry.error = errorText(err)
      console.log(`  ERR  section failed: ${entry.error}`)
      if (err instanceof Error && err.stack !== undefined) console.log(err.stack)
    } finally {
      try {
        await tmp.cleanup()
      } catch (err) {
        console.log(`  warning: could not remove temporary folders: ${errorText(err)}`)
      }
    }
    entry.elapsedMs = round(performance.now() - sectionStarted, 0)
    report.sections.push(entry)
  }

  const all = report.sections.flatMap((s) => s.figures)
  report.totals = {
    figures: all.length,
    withTarget: all.filter((f) => f.target !== null).length,
    passed: all.filter((f) => f.passed === true).length,
    failed: all.filter((f) => f.passed === false && f.error === undefined).length,
    errors: all.filter((f) => f.error !== undefined).length + report.sections.filter((s) => s.error !== undefined).length,
    elapsedMs: round(performance.now() - started, 0),
  }

  await mkdir(OUT_DIR, { recursive: true })
  await writeFile(join(OUT_DIR, 'latest.json'), JSON.stringify(report, null, 2) + '\n')
  await writeFile(join(OUT_DIR, 'latest.md'), markdown(report))

  console.log(`\n${summaryText(report)}`)
  console.log(`Wrote bench-results/latest.json and bench-results/latest.md (${(report.totals.elapsedMs / 1000).toFixed(1)} s)`)
  if (process.env.BENCH_STRICT === '1' && (report.totals.failed > 0 || report.totals.errors > 0)) process.exitCode = 1
}

async function kitsyncVersion() {
  try {
    return (await import('../dist/index.js')).KITSYNC_VERSION
  } catch (err) {
    return `unknown (${errorText(err)})`
  }
}

function summaryText(report) {
  const lines = ['Summary']
  for (const section of report.sections) {
    lines.push(`  ${section.title}${section.error === undefined ? '' : ` — section error: ${section.error}`}`)
    for (const f of section.figures) {
      const value = f.error === undefined ? `${formatNumber(f.value)} ${f.unit}` : `error: ${f.error}`
      lines.push(`    ${statusMark(f)}  ${f.id.padEnd(30)} ${value.padEnd(22)} ${f.target === null ? '' : `target ${targetText(f.target, f.unit)}`}`)
    }
  }
  const t = report.totals
  lines.push(`  ${t.passed}/${t.withTarget} targets met, ${t.failed} missed, ${t.errors} errors`)
  return lines.join('\n')
}

function markdown(report) {
  const env = report.environment
  const out = []
  out.push('# kitsync benchmark results', '')
  out.push(`- Date: ${report.date}`)
  out.push(`- kitsync ${report.kitsync}, Node ${env.node} (V8 ${env.v8}), ${env.platform}`)
  out.push(`- CPU: ${env.cpus} × ${env.cpuModel}; memory ${Math.round(env.memoryBytes / 2 ** 30)} GiB`)
  if (env.quick) out.push('- **BENCH_QUICK=1: reduced workloads; the figures do not compare with their targets.**')
  const t = report.totals
  out.push(`- Targets met: ${t.passed} of ${t.withTarget}; missed: ${t.failed}; errors: ${t.errors}; run time ${(t.elapsedMs / 1000).toFixed(1)} s`, '')
  for (const section of report.sections) {
    out.push(`## ${section.title}`, '')
    if (section.error !== undefined) out.push(`**Section error:** ${section.error}`, '')
    out.push('| Figure | Value | Target | Result |', '|---|---:|---:|---|')
    for (const f of section.figures) {
      const value = f.error === undefined ? `${formatNumber(f.value)} ${f.unit}` : 'error'
      const result =
        f.error !== undefined ? `error: ${f.error.split('\n')[0].replace(/\|/g, '\\|')}` : f.passed === null ? 'info' : f.passed ? '**pass**' : '**FAIL**'
      out.push(`| ${f.title.replace(/\|/g, '\\|')} (\`${f.id}\`) | ${value} | ${targetText(f.target, f.unit)} | ${result} |`)
    }
    out.push('')
    out.push('### Details', '')
    for (const f of section.figures) {
      out.push(`**\`${f.id}\`** — ${f.title}`, '')
      if (f.method !== undefined) out.push(`Method: ${f.method}`, '')
      if (f.error !== undefined) out.push('Error:', '', '```', f.error, '```', '')
      if (Object.keys(f.details).length > 0) out.push('```json', JSON.stringify(f.details, null, 2), '```', '')
    }
    if (section.notes.length > 0) {
      out.push('### Notes', '')
      for (const note of section.notes) out.push(`- ${note}`)
      out.push('')
    }
  }
  return out.join('\n')
}

await main()
