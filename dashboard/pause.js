// Sync pause / resume from the page (kitsync sync pause | resume): the peer stays up and keeps
// writing locally, and exchanges nothing until resumed. The state shown is the peer's
// (status.paused), read again when the event stream says sync:paused or sync:resumed.
import { h } from 'preact'
import { useState } from 'preact/hooks'
import htm from 'htm'
import { call } from './api.js'

const html = htm.bind(h)

function until(paused, now) {
  if (paused.until === undefined) return 'until resumed'
  const s = Math.max(0, Math.round((paused.until - now) / 1000))
  return s < 120 ? `for ${s} s more` : `for ${Math.round(s / 60)} min more`
}

export function PauseButton({ paused, now, onChanged }) {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState(undefined)
  const toggle = async () => {
    setBusy(true)
    setError(undefined)
    try {
      await call(paused === undefined ? 'pause' : 'resume')
      await onChanged()
    } catch (err) {
      setError(`${err.code}: ${err.message}`)
    } finally {
      setBusy(false)
    }
  }
  return html`<span class="pause-control">
    ${paused === undefined ? null : html`<span id="paused" class="paused" title=${'since ' + new Date(paused.since).toLocaleString()}>sync paused ${until(paused, now)}</span>`}
    <button
      id="pause"
      class=${paused === undefined ? 'secondary' : ''}
      data-paused=${paused === undefined ? 'false' : 'true'}
      disabled=${busy}
      onClick=${toggle}
      title=${paused === undefined ? 'exchange nothing with other devices until resumed (writes here go on)' : 'exchange with the other devices again'}
    >
      ${paused === undefined ? 'Pause sync' : 'Resume sync'}
    </button>
    ${error === undefined ? null : html`<span class="error" role="alert">${error}</span>`}
  </span>`
}
