// The dashboard's panels: devices, collections, open conflicts (resolvable here), recent
// changes and the audit log. Each renders what the API gives (status, conflicts, log).
import { h } from 'preact'
import { useState } from 'preact/hooks'
import htm from 'htm'
import { call } from './api.js'

const html = htm.bind(h)

export function bytes(n) {
  if (n === undefined || n === null) return '–'
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`
}

/** "12 s ago", "3 min ago"; '–' for never. */
export function ago(at, now) {
  if (at === undefined || at === null) return '–'
  const s = Math.max(0, Math.round((now - at) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return new Date(at).toLocaleString()
}

const short = (id) => (id ?? '').slice(-8)

/** The name of a device (by id, or by the short tag a conflict version carries), else its short id. */
export function deviceName(devices, id) {
  const d = devices.find((x) => x.peerId === id || (id !== undefined && id.length >= 6 && x.peerId.endsWith(id)) || x.peerId.startsWith(id))
  return d === undefined ? short(id) : d.name
}

/** A device's sync state as `kitsync status` says it: `syncing 3/8`, `error CODE`, else the state. */
function syncState(sync) {
  if (sync === undefined) return '–'
  if (sync.state === 'syncing' && sync.progress !== undefined) return `syncing ${sync.progress.collectionsDone}/${sync.progress.collectionsTotal}`
  if (sync.state === 'error' && sync.error !== undefined) return html`<span class="error" title=${sync.error.message}>error ${sync.error.code}</span>`
  return sync.state
}

export function Devices({ devices, now }) {
  return html`<section id="devices" class="card">
    <h2>Devices <span class="count">${devices.length}</span></h2>
    ${devices.length === 0 ? html`<p class="muted">Only this device so far: pair another one below.</p>` : null}
    <table hidden=${devices.length === 0}>
      <thead>
        <tr>
          <th>name</th>
          <th>id</th>
          <th>state</th>
          <th>last seen</th>
          <th title="idle, syncing, paused, offline or error (kitsync status)">sync</th>
          <th>last sync (lag)</th>
          <th title="this device's writes the device is not known to hold (kitsync status); offline: what goes when it is back">pending</th>
          <th>in / out</th>
        </tr>
      </thead>
      <tbody>
        ${devices.map(
          (d) =>
            html`<tr key=${d.peerId} data-device=${d.peerId} class=${'state-' + d.state.replace(/ /g, '-')}>
              <td class="name">${d.name}</td>
              <td class="mono" title=${d.peerId}>${short(d.peerId)}</td>
              <td><span class="state">${d.state}</span></td>
              <td>${d.state === 'this device' ? '–' : ago(d.lastSeen, now)}</td>
              <td class="sync">${d.state === 'this device' ? '–' : syncState(d.sync)}</td>
              <td>${d.state === 'this device' ? '–' : ago(d.lastSync, now)}</td>
              <td class="pending-count" title=${d.unsentBytes ? `${bytes(d.unsentBytes)} queued to send` : undefined}>
                ${d.state === 'this device' || d.sync === undefined ? '–' : d.sync.pending}
              </td>
              <td>${d.bytesIn === undefined ? '–' : `${bytes(d.bytesIn)} / ${bytes(d.bytesOut)}`}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`
}

export function Collections({ collections }) {
  return html`<section id="collections" class="card">
    <h2>Collections <span class="count">${collections.length}</span></h2>
    ${
      collections.length === 0
        ? html`<p class="muted">No collections yet.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>name</th>
                <th>records</th>
                <th>size</th>
                <th>kind</th>
                <th>policy</th>
                <th>open conflicts</th>
              </tr>
            </thead>
            <tbody>
              ${collections.map(
                (c) =>
                  html`<tr key=${c.name} data-collection=${c.name}>
                    <td class="name">${c.name}</td>
                    <td class="records">${c.error === undefined ? c.records : html`<span class="error">${c.error.code}</span>`}</td>
                    <td>${bytes(c.bytes)}</td>
                    <td>${c.kind ?? '–'}</td>
                    <td>${c.policy ?? '–'}</td>
                    <td class=${c.openConflicts ? 'conflicts warn' : 'conflicts'}>${c.openConflicts ?? 0}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
  </section>`
}

function Conflict({ conflict, devices, onResolved }) {
  const latest = conflict.versions[0]
  const [draft, setDraft] = useState(() => JSON.stringify(latest?.value ?? null, null, 2))
  const [error, setError] = useState(undefined)
  const [busy, setBusy] = useState(false)
  const resolve = async (choice) => {
    setBusy(true)
    setError(undefined)
    try {
      await call('resolve', { collection: conflict.collection, id: conflict.id, ...choice })
      onResolved()
    } catch (err) {
      setError(`${err.code}: ${err.message}`)
    } finally {
      setBusy(false)
    }
  }
  const save = () => {
    let value
    try {
      value = JSON.parse(draft)
    } catch (err) {
      setError(`INVALID_JSON: ${err.message}`)
      return
    }
    void resolve({ value })
  }
  const where = `${conflict.collection}/${conflict.key}${conflict.field === undefined ? '' : '.' + conflict.field}`
  return html`<li class="conflict" data-conflict=${conflict.id}>
    <div class="conflict-head"><strong>${where}</strong> <span class="muted mono">${conflict.id}</span></div>
    <ol class="versions">
      ${conflict.versions.map(
        (v) =>
          html`<li key=${v.hlc} class="version" data-device=${v.device}>
            <span class="who">${deviceName(devices, v.device)}</span>
            <pre class="value">${v.value === undefined ? '(deleted)' : JSON.stringify(v.value, null, 2)}</pre>
            <button class="take" disabled=${busy} onClick=${() => resolve({ take: v.device })}>Keep this version</button>
          </li>`,
      )}
    </ol>
    <details class="edit">
      <summary>Or write another value</summary>
      <textarea class="edit-value" rows="4" spellcheck="false" value=${draft} onInput=${(e) => setDraft(e.currentTarget.value)}></textarea>
      <button class="save" disabled=${busy} onClick=${save}>Save this value</button>
    </details>
    ${error === undefined ? null : html`<p class="error" role="alert">${error}</p>`}
  </li>`
}

export function Conflicts({ conflicts, devices, onResolved }) {
  return html`<section id="conflicts" class="card">
    <h2>Open conflicts <span class=${conflicts.length ? 'count warn' : 'count'}>${conflicts.length}</span></h2>
    ${
      conflicts.length === 0
        ? html`<p class="muted">None: every collection agrees.</p>`
        : html`<ul class="conflict-list">
            ${conflicts.map((c) => html`<${Conflict} key=${c.id} conflict=${c} devices=${devices} onResolved=${onResolved} />`)}
          </ul>`
    }
  </section>`
}

export function Changes({ changes }) {
  return html`<section id="changes" class="card">
    <h2>Recent changes</h2>
    ${
      changes.length === 0
        ? html`<p class="muted">Changes made here or on other devices show up here as they happen.</p>`
        : html`<ul class="feed">
            ${changes.map(
              (c) =>
                html`<li key=${c.seq} class="change" data-collection=${c.collection} data-key=${c.key}>
                  <span class="time">${new Date(c.at).toLocaleTimeString()}</span>
                  <span class=${'op op-' + c.op}>${c.op}</span>
                  <span class="mono">${c.collection}/${c.key}</span>
                  <span class="muted">${c.source === 'local' ? 'here' : 'from another device'}</span>
                  ${c.value === undefined ? null : html`<code class="value">${JSON.stringify(c.value).slice(0, 200)}</code>`}
                </li>`,
            )}
          </ul>`
    }
  </section>`
}

export function AuditLog({ log, devices }) {
  const entries = log.slice(-100).reverse()
  return html`<section id="audit" class="card">
    <h2>Audit log <span class="count">${log.length}</span></h2>
    ${
      entries.length === 0
        ? html`<p class="muted">Nothing yet.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>when</th>
                <th>device</th>
                <th>event</th>
                <th>about</th>
                <th>what</th>
              </tr>
            </thead>
            <tbody>
              ${entries.map(
                (e, i) =>
                  html`<tr key=${`${e.at}-${i}`} class="audit-entry" data-type=${e.type}>
                    <td>${new Date(e.at).toLocaleString()}</td>
                    <td>${deviceName(devices, e.device)}</td>
                    <td>${e.type}</td>
                    <td>${e.peer === undefined ? '–' : deviceName(devices, e.peer)}</td>
                    <td>${e.reason}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
  </section>`
}
