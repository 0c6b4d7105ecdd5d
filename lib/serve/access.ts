// Who may call the server: API keys (`Authorization: Bearer <key>`, compared in constant time)
// and the browser origins allowed by CORS. A request's own origin (the playground page the server
// serves) is always allowed; other origins only when listed.
import { createHash, timingSafeEqual } from 'node:crypto';
import type * as http from 'node:http';

import { HttpError } from './request';

export interface AccessOptions {
  /** Keys a request may present; none: no key needed. */
  apiKeys?: readonly string[];
  /** Browser origins allowed to call the API ('*': any), besides the server's own. */
  corsOrigins?: readonly string[];
  /** Whether GET /metrics needs a key when keys are set (default true). */
  metricsNeedKey?: boolean;
}

/** SHA-256 of a key: equal lengths, so comparing digests takes the same time for any key. */
const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

export class Access {
  private readonly keys: Buffer[];
  private readonly origins: Set<string>;
  readonly metricsNeedKey: boolean;

  constructor(options: AccessOptions = {}) {
    const keys = options.apiKeys ?? [];
    keys.forEach((k, i) => {
      if (typeof k !== 'string' || k.length === 0 || /\s/.test(k)) {
        throw new RangeError(`apiKeys[${i}] must be a non-empty string without spaces`);
      }
    });
    this.keys = keys.map(digest);
    this.origins = new Set(options.corsOrigins ?? []);
    this.metricsNeedKey = options.metricsNeedKey ?? true;
  }

  get keyed(): boolean {
    return this.keys.length > 0;
  }

  /** Throws 401 unless keys are off or the request presents one of them. */
  checkKey(req: http.IncomingMessage): void {
    if (this.keys.length === 0) return;
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (!m) {
      throw new HttpError(401, 'missing API key: send the header Authorization: Bearer <key>');
    }
    const given = digest(m[1]);
    // Every key is compared, whichever matches, so the time taken says nothing of the keys.
    let match = false;
    for (const key of this.keys) match = timingSafeEqual(given, key) || match;
    if (!match) throw new HttpError(401, 'invalid API key');
  }

  /**
   * Sets the CORS headers of an allowed browser origin; throws 403 for an origin that is not
   * allowed. Requests without an Origin header (not from a browser) pass.
   */
  checkOrigin(req: http.IncomingMessage, res: http.ServerResponse): void {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    const own = req.headers.host !== undefined && sameHost(origin, req.headers.host);
    if (own) return;
    res.setHeader('Vary', 'Origin');
    if (!this.origins.has('*') && !this.origins.has(origin)) {
      throw new HttpError(
        403,
        `origin ${origin} is not allowed; start the server with --cors ${origin} to allow it`,
      );
    }
    res.setHeader('Access-Control-Allow-Origin', this.origins.has('*') ? '*' : origin);
  }

  /** Answers a CORS preflight (OPTIONS) from an allowed origin. */
  preflight(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.checkOrigin(req, res);
    res.writeHead(204, {
      'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
      'Access-Control-Allow-Headers': 'Authorization, Content-Type',
      'Access-Control-Max-Age': '600',
    });
    res.end();
  }
}

function sameHost(origin: string, host: string): boolean {
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}
