import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import { KitsyncError } from '../core/errors.js'
import { MethodNotAllowed, readJsonBody, type HttpHandler, type HttpRequest, type HttpRoutes } from './http-server.js'

/**
 * The web dashboard's files, served by the peer's HTTP server behind the same token (or browser
 * session) as the API: the pages of the package's dashboard/ folder, Preact and htm from the
 * package's dependencies (no CDN, no build step), and QR codes of pairing tokens drawn here by
 * the `qrcode` library the CLI uses. Pages call /api/v1/ from this origin; nothing else may.
 */

/** The package's dashboard/ folder (beside src/ and dist/). */
const PAGES = new URL('../../dashboard/', import.meta.url)

/** Files of the dashboard: URL path -> file (pages) or module specifier (vendor). */
const FILES: Record<string, { file: URL | string; type: string }> = {
  '/': { file: new URL('index.html', PAGES), type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: new URL('app.js', PAGES), type: 'text/javascript; charset=utf-8' },
  '/ui/api.js': { file: new URL('api.js', PAGES), type: 'text/javascript; charset=utf-8' },
  '/ui/views.js': { file: new URL('views.js', PAGES), type: 'text/javascript; charset=utf-8' },
  '/ui/pairing.js': { file: new URL('pairing.js', PAGES), type: 'text/javascript; charset=utf-8' },
  '/ui/pause.js': { file: new URL('pause.js', PAGES), type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: new URL('style.css', PAGES), type: 'text/css; charset=utf-8' },
  '/ui/favicon.svg': { file: new URL('favicon.svg', PAGES), type: 'image/svg+xml' },
  '/ui/vendor/preact.js': { file: 'preact', type: 'text/javascript; charset=utf-8' },
  '/ui/vendor/hooks.js': { file: 'preact/hooks', type: 'text/javascript; charset=utf-8' },
  '/ui/vendor/htm.js': { file: 'htm', type: 'text/javascript; charset=utf-8' },
}

export const QR_PATH = '/ui/qr.svg'
/** A pairing token is a few hundred characters; nothing longer is drawn. */
const MAX_QR_TEXT = 4096

/**
 * The page's only inline script is its import map (bare 'preact' for preact/hooks); the policy
 * allows that script by its hash and nothing else inline, and nothing from another origin.
 */
function securityHeaders(html: string): Record<string, string> {
  const map = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? ''
  const hash = createHash('sha256').update(map).digest('base64')
  return {
    'Content-Security-Policy': `default-src 'none'; script-src 'self' 'sha256-${hash}'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
  }
}

export class DashboardRoutes implements HttpRoutes {
  private readonly cache = new Map<string, Buffer>()

  find(path: string): HttpHandler | undefined {
    if (path === QR_PATH) return (req, res) => this.qr(req, res)
    const entry = FILES[path]
    if (entry === undefined) return undefined
    return (req, res) => this.file(req, res, path, entry)
  }

  private async file(req: HttpRequest, res: ServerResponse, path: string, entry: { file: URL | string; type: string }): Promise<void> {
    only(req, res, ['GET', 'HEAD'])
    let body = this.cache.get(path)
    if (body === undefined) {
      const file = typeof entry.file === 'string' ? fileURLToPath(import.meta.resolve(entry.file)) : entry.file
      body = await readFile(file)
      this.cache.set(path, body)
    }
    const headers = path === '/' ? securityHeaders(body.toString('utf8')) : { 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' }
    res.writeHead(200, { ...headers, 'Content-Type': entry.type, 'Content-Length': body.byteLength })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  /** POST {text}: an SVG of the QR code of `text` (a pairing token: never in a URL, so POST). */
  private async qr(req: HttpRequest, res: ServerResponse): Promise<void> {
    only(req, res, ['POST'])
    const { text } = await readJsonBody(req.raw, MAX_QR_TEXT * 2)
    if (typeof text !== 'string' || text === '' || text.length > MAX_QR_TEXT)
      throw new KitsyncError('INVALID_ARGUMENT', `text must be a string of 1 to ${MAX_QR_TEXT} characters`)
    const { default: QRCode } = await import('qrcode')
    const svg = await QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 })
    res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' })
    res.end(svg)
  }
}

function only(req: HttpRequest, res: ServerResponse, verbs: string[]): void {
  if (verbs.includes(req.method)) return
  res.setHeader('Allow', verbs.join(', '))
  throw new MethodNotAllowed(`${req.path} takes ${verbs.join(' or ')}, not ${req.method}`)
}
