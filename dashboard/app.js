// The kitsync web dashboard: Preact + htm as plain ES modules (served by the peer from the
// package, no build step, no CDN). It reads status, conflicts and the audit log from the peer's
// HTTP API and refreshes them when the event stream says something changed.
import { h, render } from 'preact'
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import htm from 'htm'
import { call, subscribe } from './api.js'
import { AuditLog, Changes, Collections, Conflicts, Devices } from './views.js'
import { Pairing } from './pairing.js'
import { PauseButton } from './pause.js'

const html = htm.bind(h)

/** Changes kept in the feed. */
const FEED = 50
/** Status is also read this often: last-seen times move without events. */
const POLL_MS = 10_000

function App() {
  const [data, setData] = useState(undefined)
  const [failure, setFailure] = useState(undefined)
  const [live, setLive] = useState('connecting')
  const [changes, setChanges] = useState([])
  const [event, setEvent] = useState(undefined)
  const [now, setNow] = useState(Date.now())
  const seq = useRef(0)
  const timer = useRef(undefined)

  const refresh = useCallback(async () => {
    try {
      const [status, members, conflicts, log] = await Promise.all([call('status'), call('devices'), call('conflicts'), call('log')])
      setData({ status, members, conflicts, log })
      setFailure(undefined)
    } catch (err) {
      setFailure(err)
    }
  }, [])

  /** Many events in a burst make one refresh. */
  const soon = useCallback(() => {
    clearTimeout(timer.current)
    timer.current = setTimeout(refresh, 150)
  }, [refresh])

  useEffect(() => {
    void refresh()
    const close = subscribe(
      (name, data) => {
        if (name === 'change') {
          seq.current++
          setChanges((list) => [{ ...data, seq: seq.current }, ...list].slice(0, FEED))
        }
        if (name === 'pairing:pending' || name === 'device:joined') setEvent({ name, data, seq: ++seq.current })
        if (name !== 'sync:progress') soon()
      },
      (state) => {
        setLive(state)
        // Live again: catch up on what the stream missed. Lost: a read tells whether the session ended.
        soon()
      },
    )
    const poll = setInterval(refresh, POLL_MS)
    const tick = setInterval(() => setNow(Date.now()), 1000)
    return () => {
      close()
      clearInterval(poll)
      clearInterval(tick)
    }
  }, [])

  if (failure?.status === 401) {
    return html`<section id="signed-out" class="card">
      <h1>Signed out</h1>
      <p>This browser's session with the peer has ended (the peer restarted, or a day went by). Run <code>kitsync dashboard</code> again.</p>
    </section>`
  }
  if (data === undefined) return html`<p class="muted">${failure === undefined ? 'Loading…' : `${failure.code}: ${failure.message}`}</p>`
  const { status, members, conflicts, log } = data
  const devices = mergeDevices(members, status.network?.devices ?? [], status.info.deviceId, status.sync?.devices ?? [])
  return html`
    <header>
      <div>
        <h1>${status.info.name}</h1>
        <p class="muted">
          this device: <strong id="self-name">${devices.find((d) => d.state === 'this device')?.name ?? status.info.deviceId.slice(-8)}</strong>
          ${` · kitsync ${status.info.version}`}
        </p>
      </div>
      <div class="header-side">
        <span id="live" class=${'live live-' + live} title="the event stream from the peer">${live === 'live' ? 'live' : live}</span>
        <${PauseButton} paused=${status.paused} now=${now} onChanged=${refresh} />
      </div>
    </header>
    ${failure === undefined ? null : html`<p class="error" role="alert">${failure.code}: ${failure.message}</p>`}
    <${Devices} devices=${devices} now=${now} />
    <${Collections} collections=${status.collections} />
    <${Conflicts} conflicts=${conflicts} devices=${devices} onResolved=${refresh} />
    <div class="two">
      <${Pairing} event=${event} />
      <${Changes} changes=${changes} />
    </div>
    <${AuditLog} log=${log} devices=${devices} />
  `
}

/** The members of the workspace (devices) with what the running peer knows of each (status.network) and its sync state and pending count (status.sync). */
function mergeDevices(members, seen, self, sync) {
  const byId = new Map(seen.map((d) => [d.peerId, d]))
  const syncOf = new Map(sync.map((d) => [d.deviceId, d]))
  const list = members.map((m) => ({
    ...m,
    ...byId.get(m.peerId),
    state: byId.get(m.peerId)?.state ?? (m.peerId === self ? 'this device' : m.state),
    sync: syncOf.get(m.peerId),
  }))
  for (const d of seen) if (!members.some((m) => m.peerId === d.peerId)) list.push(d)
  // This device first, then by name.
  return list.sort((a, b) => (b.state === 'this device') - (a.state === 'this device') || a.name.localeCompare(b.name))
}

render(html`<${App} />`, document.getElementById('app'))
