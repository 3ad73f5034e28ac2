// A fetch-driven "browser" for the openid-client peer scripts (rp_advanced.mjs, rp_jarm.mjs):
// cookies for the broker's origin, redirects followed by hand, and the broker's pages (sign-in,
// consent, device confirmation) answered as a user would.

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

function decode(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|#39);/gi, (_, e) => {
    const l = e.toLowerCase();
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    if (l.startsWith('#')) return String.fromCodePoint(parseInt(l.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"' }[l];
  });
}

export function forms(html) {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map((m) => {
    const action = decode(/action="([^"]*)"/.exec(m[1])?.[1] ?? '');
    const method = (/method="([^"]*)"/.exec(m[1])?.[1] ?? 'get').toLowerCase();
    const hidden = {};
    for (const i of m[2].matchAll(/<input\b[^>]*type="hidden"[^>]*>/gi)) {
      const name = /name="([^"]*)"/.exec(i[0])?.[1];
      if (name) hidden[name] = decode(/value="([^"]*)"/.exec(i[0])?.[1] ?? '');
    }
    return { action, method, hidden, html: m[2] };
  });
}

/** Cookies for the broker's origin; redirects followed by hand; pages answered as a user would. */
export class Browser {
  /** `user`: { username, password } typed on the sign-in page. */
  constructor(origin, user) { this.origin = origin; this.user = user; this.jar = new Map(); this.pages = []; }

  async fetch(url, init = {}) {
    const headers = { ...(init.headers ?? {}) };
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '' || value === '""') this.jar.delete(name); else this.jar.set(name, value);
    }
    return response;
  }

  /** Goes to `url` and answers the pages (login, consent, device confirmation) until it leaves
   * the broker (returns that URL) or lands on a page without anything to answer (returns it). */
  async visit(url) {
    let response = await this.fetch(url);
    for (let step = 0; step < 20; step++) {
      if ([302, 303].includes(response.status)) {
        const next = new URL(response.headers.get('location'), this.origin);
        if (next.origin !== this.origin) return { left: next.href };
        response = await this.fetch(next.href);
        continue;
      }
      const html = await response.text();
      check(response.status === 200, `page ${response.url} answered ${response.status}: ${html.slice(0, 300)}`);
      const all = forms(html);
      const login = all.find((f) => f.action === '/login' && /type="password"/.test(f.html));
      const consent = all.find((f) => f.action === '/consent');
      const device = all.find((f) => f.action === '/device' && f.method === 'post');
      let form; let extra;
      if (login) { form = login; extra = { username: this.user.username, password: this.user.password }; this.pages.push('login'); }
      else if (consent) { form = consent; extra = { decision: 'allow' }; this.pages.push('consent'); }
      else if (device) { form = device; extra = { decision: 'allow' }; this.pages.push('device'); }
      else return { html };
      response = await this.fetch(new URL(form.action, this.origin).href, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...form.hidden, ...extra }).toString() });
    }
    throw new Error('too many steps');
  }
}
