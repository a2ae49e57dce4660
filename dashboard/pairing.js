// Pairing a new device from the page: a token from the peer's `pair` method, shown as a QR code
// and as the `kitsync join` command; with "confirm here", the joining device's code is shown
// when it asks to join, and the person approves or refuses it (`approve`).
import { h } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import htm from 'htm'
import { call, qrImage } from './api.js'

const html = htm.bind(h)

const TTL_MINUTES = 10

export function Pairing({ event }) {
  const [confirm, setConfirm] = useState(true)
  const [invite, setInvite] = useState(undefined)
  const [qr, setQr] = useState(undefined)
  const [pending, setPending] = useState(undefined)
  const [outcome, setOutcome] = useState(undefined)
  const [error, setError] = useState(undefined)
  const [joining, setJoining] = useState(undefined)

  useEffect(() => {
    if (event === undefined || invite === undefined) return
    if (event.name === 'pairing:pending' && event.data.tokenId === invite.tokenId) {
      setPending(event.data)
      setJoining(event.data.name)
    }
    // The event names the device, not the token: with a device waiting for approval, it must be that one.
    if (event.name === 'device:joined' && (joining === undefined || joining === event.data.name)) {
      setOutcome(`${event.data.name} joined the workspace.`)
      setPending(undefined)
      setInvite(undefined)
    }
  }, [event])

  useEffect(() => () => qr !== undefined && URL.revokeObjectURL(qr), [qr])

  const start = async () => {
    setError(undefined)
    setOutcome(undefined)
    setPending(undefined)
    setJoining(undefined)
    try {
      const made = await call('pair', { ttlMs: TTL_MINUTES * 60_000, confirm })
      setInvite(made)
      setQr(await qrImage(made.token))
    } catch (err) {
      setError(`${err.code}: ${err.message}`)
    }
  }

  const decide = async (accept) => {
    try {
      await call('approve', { tokenId: invite.tokenId, accept })
      setPending(undefined)
      if (!accept) {
        setOutcome('Refused: the device did not join.')
        setInvite(undefined)
        // The join can end (device:joined) before this answer arrives: "joined" is not taken back.
      } else setOutcome((o) => o ?? 'Approved: the device is joining…')
    } catch (err) {
      setError(`${err.code}: ${err.message}`)
    }
  }

  return html`<section id="pairing" class="card">
    <h2>Pair a device</h2>
    <div class="row">
      <label
        ><input type="checkbox" id="pair-confirm" checked=${confirm} onChange=${(e) => setConfirm(e.currentTarget.checked)} /> confirm the new device here
        (compare its code)</label
      >
      <button id="pair-start" onClick=${start}>${invite === undefined ? 'Make a pairing token' : 'Make a new token'}</button>
    </div>
    ${
      invite === undefined
        ? null
        : html`<div class="invite">
            ${qr === undefined ? null : html`<img id="pair-qr" src=${qr} alt="QR code of the pairing token" width="240" height="240" />`}
            <div>
              <p>On the new device run:</p>
              <pre id="pair-command" class="mono">kitsync join <span id="pair-token">${invite.token}</span></pre>
              <p class="muted">The token works once and expires at ${new Date(invite.expiresAt).toLocaleTimeString()}.</p>
            </div>
          </div>`
    }
    ${
      pending === undefined
        ? null
        : html`<div id="pair-pending" class="pending" role="alert">
            <p><strong class="who">${pending.name}</strong> wants to join. Its screen shows the code:</p>
            <p id="pair-code" class="code">${pending.code}</p>
            <p>Approve only if both codes are the same.</p>
            <button id="pair-approve" onClick=${() => decide(true)}>Approve</button>
            <button id="pair-refuse" class="secondary" onClick=${() => decide(false)}>Refuse</button>
          </div>`
    }
    ${outcome === undefined ? null : html`<p id="pair-outcome" class="ok">${outcome}</p>`}
    ${error === undefined ? null : html`<p class="error" role="alert">${error}</p>`}
  </section>`
}
