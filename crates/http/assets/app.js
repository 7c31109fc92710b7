// The returns dashboard: plain DOM, no framework, no build step. It reads the same HTTP API as
// any client (see docs/openapi.json) and inserts every piece of data with textContent or
// setAttribute, never as HTML.
'use strict';

(() => {
  // ---------------------------------------------------------------- reference data

  // Every team, in order, as the server wrote it into the page: { id, name, produces, late }.
  // A late team acts on nothing and nobody waits for it; the others decide every return.
  const TEAMS = JSON.parse(document.getElementById('teams').textContent);
  const REACTING = TEAMS.filter((t) => !t.late).map((t) => t.id);
  const MAX_ITEMS = 12;
  // The first ask for a sample takes this many, to seed the form's suggestions.
  const SUGGEST_FROM = 20;
  const HINT_COMPARE = 'returns compare --returns 1000 --outage manufacturing@2..6';
  const TOKEN_KEY = 'returns.token';
  const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)').matches;

  // ---------------------------------------------------------------- DOM helpers

  const $ = (id) => document.getElementById(id);

  function append(node, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // el('span', {class: 'x', 'data-a': v}, 'text', child): attributes via setAttribute, text as text.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      node.setAttribute(k, v === true ? '' : String(v));
    }
    return append(node, children);
  }

  // Replace a node's children; null, undefined and false are skipped (replaceChildren would
  // write them as text).
  function fill(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    }
    return append(node, children);
  }

  function setAttr(node, name, value) {
    const v = String(value);
    if (node.getAttribute(name) !== v) node.setAttribute(name, v);
  }

  function setText(node, value) {
    const v = String(value);
    if (node.textContent !== v) node.textContent = v;
  }

  // run() now and then every `ms` after it finished, but not while the tab is hidden or the
  // server waits for its token: a hidden tab asks nothing; now() (on its return, or once the
  // token is entered) starts it again.
  function poller(run, ms) {
    let timer = null;
    let busy = false;
    let again = false; // now() while a run was on its way: another one right after it
    const tick = async () => {
      timer = null;
      if (document.hidden || authBlocked) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        await run();
      } finally {
        busy = false;
      }
      if (!timer && !document.hidden && !authBlocked) timer = setTimeout(tick, again ? 0 : ms);
      again = false;
    };
    return {
      now() {
        clearTimeout(timer);
        timer = null;
        tick();
      },
    };
  }

  // ---------------------------------------------------------------- formatting

  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const intFmt = new Intl.NumberFormat('en');
  const fmtInt = (n) => (n === null || n === undefined ? '—' : intFmt.format(n));

  function clock(iso, withMs) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '—';
    const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return withMs ? `${hms}.${pad(d.getMilliseconds(), 3)}` : hms;
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 10) return `${ms.toFixed(1)} ms`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  const moneyFmts = new Map();
  function moneyFmt(currency) {
    if (!moneyFmts.has(currency)) {
      let f;
      try {
        f = new Intl.NumberFormat('en', { style: 'currency', currency });
      } catch {
        f = null; // not an ISO 4217 code: shown as a plain number with the code
      }
      moneyFmts.set(currency, f);
    }
    return moneyFmts.get(currency);
  }
  function exponent(currency) {
    const f = moneyFmt(currency);
    return f ? f.resolvedOptions().maximumFractionDigits : 2;
  }
  function fmtMoney(minor, currency) {
    const f = moneyFmt(currency);
    const major = minor / 10 ** exponent(currency);
    return f ? f.format(major) : `${major.toFixed(2)} ${currency}`;
  }
  function fmtMoneyShort(minor, currency) {
    const major = minor / 10 ** exponent(currency);
    try {
      return new Intl.NumberFormat('en', { style: 'currency', currency, notation: 'compact', maximumFractionDigits: 1 }).format(major);
    } catch {
      return `${intFmt.format(Math.round(major))} ${currency}`;
    }
  }

  const shortId = (id) => String(id || '').slice(0, 8);

  // returns.sales.OrderRefunded.v1 -> OrderRefunded
  function shortType(t) {
    const parts = String(t || '').split('.');
    if (parts.length > 1 && /^v\d+$/.test(parts[parts.length - 1])) return parts[parts.length - 2];
    return parts[parts.length - 1];
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, kind, field, message) {
      super(message);
      this.status = status;
      this.kind = kind;
      this.field = field;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  async function api(path, opts = {}) {
    const headers = { Accept: 'application/json' };
    let body;
    if (opts.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    // Reads too: a server given a token wants it on every route but the page and /healthz.
    if (token()) headers.Authorization = `Bearer ${token()}`;
    let res;
    try {
      res = await fetch(path, { method: opts.method || 'GET', headers, body, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'network', null, 'The server does not answer.');
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      const e = new ApiError(res.status, err.kind || `http_${res.status}`, err.field || null,
        err.message || `${res.status} ${res.statusText || 'error'}`);
      if (res.status === 401) askForToken(!!opts.write);
      throw e;
    }
    return { status: res.status, data };
  }

  // ---------------------------------------------------------------- token

  // A server given a token wants it for reads as well as writes. fetch sends it as a header;
  // EventSource cannot, so the page also keeps it in a cookie the server accepts instead. The
  // cookie is named after the port: cookies are not kept apart by port, and two servers on one
  // host must not overwrite each other's (the server takes any `returns_token*` that matches).
  const COOKIE = `returns_token_${location.port || (location.protocol === 'https:' ? '443' : '80')}`;
  function setCookie(t) {
    document.cookie = t
      ? `${COOKIE}=${encodeURIComponent(t)}; path=/; SameSite=Strict`
      : `${COOKIE}=; path=/; Max-Age=0; SameSite=Strict`;
  }

  // A read answered 401: the page waits for the token (no more polling, no reconnecting) until
  // it is entered.
  let authBlocked = false;

  // A 401 names the problem where the request was made; here only the field to fix it. The
  // focus moves there when the field appears, or for a write the user just made; not again for
  // every poll that is refused.
  function askForToken(write) {
    const form = $('token-form');
    const appeared = form.hidden;
    if (!write && !authBlocked) {
      authBlocked = true;
      checkStale();
    }
    form.hidden = false;
    setText($('token-hint'), token() ? 'The server refused this token.' : "This server needs its token to show and change anything.");
    form.classList.add('wanted');
    if (appeared || write) $('token').focus();
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
    setCookie(t);
    $('token-form').classList.remove('wanted');
    setText($('token-hint'), t ? 'Kept for this tab; every request sends it.' : 'Token forgotten.');
    // Try again with it: the stream, and everything the page shows.
    authBlocked = false;
    checkStale();
    connect();
    refreshNow();
  });
  if (token()) {
    setCookie(token());
    $('token-form').hidden = false;
    $('token').value = token();
    setText($('token-hint'), 'Kept for this tab; every request sends it.');
  }

  // ---------------------------------------------------------------- samples

  function uuid4() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // Requests made by the server's generator (GET /samples): the only source of samples. Their
  // models, defects and locations become the form's suggestions; the server decides what is valid.
  async function fetchSamples(count) {
    const { data } = await api(`/samples?count=${count}`);
    if (!data || !Array.isArray(data.requests)) {
      throw new ApiError(0, 'bad_answer', null, 'GET /samples answered no requests.');
    }
    for (const s of data.requests) suggest(s);
    return data.requests;
  }

  const suggested = new Map([['models', new Set()], ['defects', new Set()], ['locations', new Set()]]);
  function suggest(s) {
    for (const [id, value] of [['models', s.model], ['defects', s.reason && s.reason.defect], ['locations', s.item_location]]) {
      if (typeof value !== 'string' || suggested.get(id).has(value)) continue;
      suggested.get(id).add(value);
      $(id).append(el('option', { value }));
    }
  }

  // ---------------------------------------------------------------- submit form

  const form = $('submit-form');
  let sample = null;

  function minorToText(minor, currency) {
    const e = exponent(currency);
    if (e === 0) return String(minor);
    const neg = minor < 0;
    const s = String(Math.abs(minor)).padStart(e + 1, '0');
    return `${neg ? '-' : ''}${s.slice(0, -e)}.${s.slice(-e)}`;
  }

  // "799.00" -> 79900, exactly (no floating point).
  function textToMinor(text, currency) {
    const e = exponent(currency);
    const m = /^\s*(\d{1,13})(?:[.,](\d*))?\s*$/.exec(text);
    if (!m || (m[2] || '').length > e) return null;
    return Number(m[1]) * 10 ** e + Number((m[2] || '').padEnd(e, '0') || 0);
  }

  function fillForm(s) {
    sample = s;
    const f = form.elements;
    f.order_id.value = s.order_id || '';
    f.model.value = s.model || '';
    f.serial.value = s.serial || '';
    f['reason.defect'].value = (s.reason && s.reason.defect) || '';
    f['reason.noticed'].value = (s.reason && s.reason.noticed) || 'unknown';
    f['reason.description'].value = (s.reason && s.reason.description) || '';
    f.item_location.value = s.item_location || '';
    const refund = s.refund_amount || { minor: 0, currency: 'EUR' };
    f['refund_amount.currency'].value = refund.currency;
    f.refund_amount.value = minorToText(refund.minor, refund.currency);
    showRest();
    clearInvalid();
  }

  // The sample's fields the form has no input for (return_id among them).
  function showRest() {
    const rest = { ...sample };
    for (const k of ['order_id', 'model', 'serial', 'reason', 'item_location', 'refund_amount']) delete rest[k];
    setText($('sample-rest'), JSON.stringify(rest, null, 2));
  }

  // A return id for the next submit of the same form: a form submitted again (edited or not)
  // is another return, not a conflicting copy of the last one.
  async function freshReturnId() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    if (window.crypto && typeof crypto.getRandomValues === 'function') return uuid4();
    const [s] = await fetchSamples(1);
    return s.return_id;
  }

  function clearInvalid() {
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  }

  function readForm() {
    const f = form.elements;
    const currency = f['refund_amount.currency'].value.trim().toUpperCase();
    const minor = textToMinor(f.refund_amount.value, currency);
    if (minor === null) {
      throw new ApiError(0, 'invalid_field', 'refund_amount',
        `Refund: write an amount like 799.00 (at most ${exponent(currency)} decimals).`);
    }
    const description = f['reason.description'].value.trim();
    return {
      ...sample,
      order_id: f.order_id.value.trim(),
      model: f.model.value.trim(),
      serial: f.serial.value.trim(),
      reason: { ...(sample.reason || {}), defect: f['reason.defect'].value.trim(), noticed: f['reason.noticed'].value, description: description || null },
      item_location: f.item_location.value.trim(),
      refund_amount: { minor, currency },
    };
  }

  // The server names a field like `reason.defect` or `refund_amount.minor`.
  function markInvalid(field) {
    if (!field) return;
    const names = [field, field.replace(/\.minor$/, ''), field.split('.')[0]];
    for (const n of names) {
      const input = form.elements[n];
      if (input && input.setAttribute) {
        input.setAttribute('aria-invalid', 'true');
        return;
      }
    }
    const more = form.querySelector('details.more');
    if (more) more.open = true;
  }

  // data-status and data-return-id name an answer only (accepted, duplicate, error): while a
  // request is on its way, or for a note, neither is set.
  function showResult(status, returnId, message) {
    const out = $('submit-result');
    const answered = status !== 'pending';
    if (answered) out.setAttribute('data-status', status);
    else out.removeAttribute('data-status');
    if (answered && returnId) out.setAttribute('data-return-id', returnId);
    else out.removeAttribute('data-return-id');
    const label = { accepted: 'Accepted', duplicate: 'Already accepted', error: 'Refused', pending: 'Sending…' }[status];
    const parts = [message && status === 'pending' && !returnId ? null : el('span', { class: `chip s-${status}` }, label)];
    if (returnId && status !== 'pending' && status !== 'error') {
      parts.push(el('button', { type: 'button', class: 'link mono', 'data-open': returnId, title: 'Open its timeline' }, returnId));
    }
    if (message) parts.push(el('span', { class: status === 'error' ? 'err' : 'muted' }, message));
    fill(out, ...parts);
  }

  // True while the last ask for a sample failed (it is asked again once a token is entered).
  let sampleFailed = false;

  async function newSample() {
    const btn = $('new-sample');
    btn.setAttribute('aria-busy', 'true');
    try {
      const [s] = await fetchSamples(sample ? 1 : SUGGEST_FROM);
      sampleFailed = false;
      fillForm(s);
      fill($('submit-result'));
    } catch (e) {
      sampleFailed = true;
      showResult('pending', null, e.status === 401
        ? "No sample from the server without its token: enter the token, and one comes."
        : `No sample from the server (${e.message}): try New sample again.`);
    } finally {
      btn.removeAttribute('aria-busy');
    }
  }

  $('new-sample').addEventListener('click', newSample);

  let submitting = false;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (submitting || !sample) return;
    clearInvalid();
    let body;
    try {
      body = readForm();
    } catch (e) {
      markInvalid(e.field);
      showResult('error', sample.return_id, e.message);
      return;
    }
    submitting = true;
    $('submit').setAttribute('aria-busy', 'true');
    showResult('pending', body.return_id);
    try {
      const { data } = await api('/returns', { method: 'POST', json: body, write: true });
      // The result names the return just sent; the form gets a new id for the next one.
      let next = null;
      try {
        next = await freshReturnId();
      } catch {
        next = null;
      }
      if (next && sample.return_id === body.return_id) {
        sample = { ...sample, return_id: next };
        showRest();
      }
      showResult(data.duplicate ? 'duplicate' : 'accepted', data.return_id,
        `${data.duplicate ? 'Nothing is published again.' : 'Published to returnOrders.'}${next ? ' The form has a new return id for the next one.' : ''}`);
      openTimeline(data.return_id, false);
    } catch (e) {
      markInvalid(e.field);
      showResult('error', body.return_id, e.message);
    } finally {
      submitting = false;
      $('submit').removeAttribute('aria-busy');
    }
  });

  $('submit-result').addEventListener('click', (ev) => {
    const b = ev.target.closest('[data-open]');
    if (b) openTimeline(b.getAttribute('data-open'), true);
  });

  // ---------------------------------------------------------------- burst

  let bursting = false;
  $('burst-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (bursting) return;
    const input = $('burst-count');
    const n = Math.floor(Number(input.value));
    const out = $('burst-result');
    if (!Number.isFinite(n) || n < 1 || n > 500) {
      input.setAttribute('aria-invalid', 'true');
      out.setAttribute('data-state', 'error');
      fill(out, el('span', { class: 'err' }, 'Send between 1 and 500 returns.'));
      return;
    }
    input.removeAttribute('aria-invalid');
    bursting = true;
    $('burst').setAttribute('aria-busy', 'true');
    const bar = $('burst-bar');
    const tally = { sent: 0, accepted: 0, duplicate: 0, refused: 0, error: null };
    const render = (done) => {
      out.setAttribute('data-sent', tally.sent);
      out.setAttribute('data-accepted', tally.accepted);
      out.setAttribute('data-state', done ? 'done' : 'running');
      bar.style.width = `${(100 * tally.sent) / n}%`;
      const parts = [el('span', { class: 'num' }, done ? `Sent ${tally.sent}` : `Sending ${tally.sent} / ${n}`),
        el('span', { class: 'chip s-accepted' }, `${tally.accepted} accepted`)];
      if (tally.duplicate) parts.push(el('span', { class: 'chip s-duplicate' }, `${tally.duplicate} duplicate`));
      if (tally.refused) parts.push(el('span', { class: 'chip s-error' }, `${tally.refused} refused`));
      if (tally.error) parts.push(el('span', { class: 'err' }, tally.error));
      fill(out, ...parts);
    };
    render(false);
    try {
      const requests = [];
      while (requests.length < n) requests.push(...(await fetchSamples(Math.min(50, n - requests.length))));
      let next = 0;
      const worker = async () => {
        while (next < requests.length) {
          const body = requests[next++];
          try {
            const { data } = await api('/returns', { method: 'POST', json: body, write: true });
            if (data.duplicate) tally.duplicate++;
            else tally.accepted++;
          } catch (e) {
            tally.refused++;
            tally.error = e.message;
          }
          tally.sent++;
          render(false);
        }
      };
      await Promise.all(Array.from({ length: Math.min(6, n) }, worker));
    } catch (e) {
      tally.error = e.message;
    } finally {
      render(true);
      bursting = false;
      $('burst').removeAttribute('aria-busy');
    }
  });

  // ---------------------------------------------------------------- lanes

  const lanes = new Map(); // lane id -> {node, list, stats:{}, ...}
  const lanesNode = $('lanes');

  // A stat: [key, label, tooltip]; the tooltip says what the number counts.
  function statCell(key, label, tip) {
    const dd = el('dd', { 'data-k': key }, '—');
    return [el('div', { class: `stat stat-${key}`, title: tip || null }, el('dt', null, label), dd), dd];
  }

  // stats: [key, label, tooltip] cells; a [caption, tooltip] pair of strings between them starts
  // a group under that caption.
  function buildLane(id, title, sub, stats, ctl, late) {
    const statNodes = {};
    const blocks = [];
    let dl = null;
    for (const st of stats) {
      if (st.length === 2) {
        blocks.push(el('p', { class: 'stat-cap', title: st[1] }, el('span', null, st[0])));
        dl = null;
        continue;
      }
      if (!dl) blocks.push((dl = el('dl', { class: 'lane-stats' })));
      const [cell, dd] = statCell(...st);
      statNodes[st[0]] = dd;
      statNodes[`${st[0]}Cell`] = cell;
      dl.append(cell);
    }
    const list = el('ol', { class: 'lane-list', 'aria-label': `${title}: latest events, newest first` });
    const node = el('article', { class: 'lane', 'data-testid': `lane-${id}`, 'data-lane': id, 'aria-labelledby': `lane-${id}-h` },
      el('header', { class: 'lane-head' },
        el('div', { class: 'lane-title' }, el('h3', { id: `lane-${id}-h` }, title), late ? el('span', { class: 'tag' }, 'joined late') : null),
        // The sub line, or in its place while the numbers are stale, since when they are.
        el('div', { class: 'lane-sub-box' }, sub, el('p', { class: 'lane-asof', 'aria-hidden': 'true' })),
        ...blocks,
        ctl),
      el('div', { class: 'lane-body' }, list, el('p', { class: 'lane-empty' }, 'No events yet')));
    lanesNode.append(node);
    const lane = { id, node, list, stats: statNodes, asof: node.querySelector('.lane-asof') };
    lanes.set(id, lane);
    return lane;
  }

  {
    const req = buildLane('requests', 'returnOrders',
      el('p', { class: 'lane-sub' }, 'what ', el('b', null, 'User Support'), ' published: one request per return'),
      [['end', 'records', 'Records on returnOrders (the whole log)'], ['caught', 'caught up', 'Teams with nothing left to read'],
        ['maxlag', 'most behind', 'The largest lag of any team'], ['offline', 'offline', 'Teams taken offline']],
      el('div', { class: 'lane-ctl' }, el('span', { class: 'badge topic' }, 'topic')));
    req.node.setAttribute('data-end', '0');
    req.node.classList.add('lane-requests');
    for (const t of TEAMS) {
      const badge = el('span', { class: 'badge state' }, '…');
      const toggle = el('button', { type: 'button', class: 'toggle', 'data-testid': 'toggle', 'aria-pressed': 'false', 'data-team': t.id }, 'Take offline');
      const lane = buildLane(t.id, t.name,
        el('p', { class: 'lane-sub' }, 'produces ', el('b', null, t.produces)),
        [['position', 'position', 'Committed position of its consumer group on returnOrders: durable, it survives a restart'],
          ['lag', 'lag', 'Records on returnOrders it has not read yet'],
          ['this run', 'Counted by this server process since it started: a restart counts from 0 again, while the committed position above is durable'],
          ['handled', 'handled', 'Returns this server process has handled since it started (a restart counts from 0; the position above is durable)'],
          ['rejected', 'rejected', 'Returns it decided to reject, this run'],
          ['dead', 'dead-lettered', 'Records it could not handle and dead-lettered, this run'],
          ['dup', 'duplicates', 'Records it had handled already and skipped, this run']],
        el('div', { class: 'lane-ctl' }, badge, toggle), t.late);
      lane.badge = badge;
      lane.toggle = toggle;
      lane.online = null;
      for (const [k, v] of [['data-online', 'true'], ['data-lag', '0'], ['data-handled', '0'], ['data-rejected', '0'], ['data-dead-lettered', '0']]) {
        lane.node.setAttribute(k, v);
      }
      lane.node.setAttribute('data-known', 'false');
    }
  }

  // A line under the lanes about the last toggle; it goes after a while (the lanes say the rest).
  let laneMessageTimer = null;
  function laneMessage(text, isError) {
    const p = $('lanes-msg');
    p.classList.toggle('err', !!isError);
    setText(p, text || '');
    clearTimeout(laneMessageTimer);
    laneMessageTimer = setTimeout(() => setText(p, ''), isError ? 20000 : 10000);
  }

  // A toggle's answer is newer than a `teams` event sent before it: keep the answer until the
  // events catch up (changed_at), or for 5 s.
  const overrides = new Map();

  function applyOnline(lane, online) {
    lane.online = online;
    setAttr(lane.node, 'data-online', online);
    setAttr(lane.toggle, 'aria-pressed', !online);
    setText(lane.toggle, online ? 'Take offline' : 'Bring online');
    setText(lane.badge, online ? 'online' : 'offline');
  }

  const fmtCount = (n) => (typeof n === 'number' ? String(n) : '—');

  function onTeams(t) {
    if (!t) return;
    lastTeamsAt = Date.now();
    setText($('log'), t.log || '—');
    const req = lanes.get('requests');
    setAttr(req.node, 'data-end', t.end);
    setText(req.stats.end, t.end);
    let caught = 0;
    let maxLag = 0;
    let offline = 0;
    const rows = Array.isArray(t.teams) ? t.teams : [];
    for (const row of rows) {
      const lane = lanes.get(row.team);
      if (!lane || lane.id === 'requests') continue;
      if (row.lag === 0) caught++;
      maxLag = Math.max(maxLag, row.lag || 0);
      setAttr(lane.node, 'data-known', 'true');
      setAttr(lane.node, 'data-lag', row.lag);
      setAttr(lane.node, 'data-handled', row.processed);
      setAttr(lane.node, 'data-rejected', row.rejected);
      setAttr(lane.node, 'data-dead-lettered', row.dead_lettered);
      setText(lane.stats.position, fmtCount(row.position));
      setText(lane.stats.lag, row.lag);
      setText(lane.stats.handled, row.processed);
      setText(lane.stats.rejected, row.rejected);
      setText(lane.stats.dead, row.dead_lettered);
      setText(lane.stats.dup, fmtCount(row.duplicates));
      if (row.group) {
        lane.stats.positionCell.title = `Committed position of the group ${row.group} on returnOrders, of ${t.end} records: durable, it survives a restart`;
      }
      let online = row.online === undefined ? true : !!row.online;
      const o = overrides.get(row.team);
      if (o) {
        const seen = row.changed_at ? Date.parse(row.changed_at) : 0;
        if (seen >= o.at || Date.now() - o.set > 5000) overrides.delete(row.team);
        else online = o.online;
      }
      applyOnline(lane, online);
      if (!online) offline++;
      lane.toggle.title = row.changed_at ? `${online ? 'Online' : 'Offline'} since ${clock(row.changed_at)}` : '';
    }
    setText(req.stats.caught, `${caught}/${rows.length}`);
    setText(req.stats.maxlag, maxLag);
    setText(req.stats.offline, offline);
    setAttr(req.node, 'data-offline', offline);
    setAttr(req.node, 'data-maxlag', maxLag);
  }

  lanesNode.addEventListener('click', (ev) => {
    const btn = ev.target.closest('button[data-testid=toggle]');
    if (btn) {
      toggleTeam(btn.getAttribute('data-team'));
      return;
    }
    const li = ev.target.closest('li[data-return-id]');
    if (li) openTimeline(li.getAttribute('data-return-id'), true);
  });
  // A lane's list is one Tab stop (a roving tabindex): the item last moved to, else the newest;
  // arrows, Home and End move within the list; Enter or Space opens the item's return.
  // Records without a return id open nothing and are passed over. Items the narrow layout
  // hides (display: none) are passed over too.
  const itemsOf = (list) => [...list.querySelectorAll('li[data-return-id]')].filter((li) => li.getClientRects().length > 0);

  function rove(list, to) {
    const items = itemsOf(list);
    const current = to && items.includes(to) ? to : items.find((li) => li.getAttribute('tabindex') === '0') || items[0];
    for (const li of list.querySelectorAll('li[data-return-id]')) setAttr(li, 'tabindex', li === current ? '0' : '-1');
    return current;
  }

  lanesNode.addEventListener('focusin', (ev) => {
    const li = ev.target.closest('li[data-return-id]');
    if (li && ev.target === li) rove(li.parentElement, li);
  });
  lanesNode.addEventListener('keydown', (ev) => {
    const li = ev.target.closest('li[data-return-id]');
    if (!li || ev.target !== li || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      openTimeline(li.getAttribute('data-return-id'), true);
      return;
    }
    const items = itemsOf(li.parentElement);
    const at = items.indexOf(li);
    const to = { ArrowDown: items[at + 1], ArrowUp: items[at - 1], Home: items[0], End: items[items.length - 1] }[ev.key];
    if (ev.key in { ArrowDown: 1, ArrowUp: 1, Home: 1, End: 1 }) ev.preventDefault();
    if (to && to !== li) {
      rove(li.parentElement, to);
      to.focus();
    }
  });

  // The layout changes how many items a lane shows: each list keeps a Tab stop it shows.
  const narrowLanes = window.matchMedia('(max-width: 520px)');
  narrowLanes.addEventListener('change', () => {
    for (const lane of lanes.values()) {
      const focused = lane.list.contains(document.activeElement) ? document.activeElement : null;
      const stop = rove(lane.list);
      if (focused && focused !== stop && focused.getClientRects().length === 0 && stop) stop.focus();
    }
  });

  async function toggleTeam(team) {
    const lane = lanes.get(team);
    if (!lane || lane.toggle.getAttribute('aria-busy') === 'true') return;
    const goOffline = lane.online !== false;
    lane.toggle.setAttribute('aria-busy', 'true');
    try {
      const { data } = await api(`/teams/${encodeURIComponent(team)}/${goOffline ? 'offline' : 'online'}`, { method: 'POST', write: true });
      const online = data && typeof data.online === 'boolean' ? data.online : !goOffline;
      overrides.set(team, { online, at: data && data.changed_at ? Date.parse(data.changed_at) : Date.now(), set: Date.now() });
      applyOnline(lane, online);
      laneMessage(`${team} is ${online ? 'back online: it reads from its committed position and catches up' : 'offline: its lag grows while returns arrive'}.`);
    } catch (e) {
      laneMessage(`${team}: ${e.message}`, true);
    } finally {
      lane.toggle.removeAttribute('aria-busy');
    }
  }

  const recordKey = (rec) => `${rec.topic}/${rec.partition}/${rec.offset}`;

  function recordItem(rec, laneId) {
    const outcome = ['accepted', 'rejected', 'request', 'unreadable'].includes(rec.outcome) ? rec.outcome : 'unreadable';
    // A request's summary is `model · defect · location`: the model heads it, the defect follows.
    const [model, defect] = outcome === 'request' && rec.summary ? rec.summary.split(' · ') : [];
    const head = model || rec.event_type;
    const note = defect || rec.reason || '';
    const time = el('span', { class: 'ev-time' }, rec.time ? clock(rec.time) : '');
    const tip = [rec.event_type, rec.summary, rec.reason && outcome === 'rejected' ? `rejected: ${rec.reason}` : rec.reason,
      `${rec.topic} · partition ${rec.partition} · offset ${rec.offset}`, rec.return_id ? `return ${rec.return_id}` : null].filter(Boolean).join('\n');
    const id = rec.return_id || '';
    // A record without a return id (unreadable, no key) is shown but opens nothing.
    return el('li', {
      class: `ev o-${outcome}${model ? ' ev-req' : ''}`, tabindex: id ? '-1' : null, role: id ? 'button' : null, title: tip,
      'data-return-id': id || null, 'data-event-type': rec.event_type, 'data-outcome': outcome, 'data-key': recordKey(rec),
      'aria-label': `${rec.event_type}${id ? ` for return ${shortId(id)}` : ''}${rec.reason ? `, ${outcome === 'rejected' ? 'rejected: ' : ''}${rec.reason}` : ''}${rec.time ? `, at ${clock(rec.time)}` : ''}.${id ? ' Open its timeline.' : ''}`,
    },
    // A request: the model and the time, then the return and the defect (the defect gets the
    // room of the time: it is the longer). Others: the type, then the return, reason and time.
    el('span', { class: 'ev-l1' }, el('span', { class: 'ev-dot', 'aria-hidden': 'true' }), el('span', { class: 'ev-type' }, head), model ? time : null),
    el('span', { class: 'ev-l2' }, el('span', { class: 'ev-id' }, id ? shortId(id) : `@${rec.offset}`),
      el('span', { class: `ev-reason${defect ? ' plain' : ''}` }, note), model ? null : time));
  }

  // Records come oldest first, per lane in the order the status view read them; a reconnect
  // sends the latest again, so what a lane shows already is skipped.
  function onRecords(msg, animate) {
    if (!msg) return;
    const byLane = new Map();
    for (const rec of msg.records || []) {
      if (!lanes.has(rec.lane)) continue;
      if (!byLane.has(rec.lane)) byLane.set(rec.lane, []);
      byLane.get(rec.lane).push(rec);
      if (rec.return_id && rec.return_id === tl.id) timelineNudge();
    }
    for (const [laneId, recs] of byLane) {
      const lane = lanes.get(laneId);
      const shown = new Set([...lane.list.children].map((li) => li.getAttribute('data-key')));
      const fresh = recs.filter((r) => !shown.has(recordKey(r)));
      const focused = lane.list.contains(document.activeElement);
      for (const rec of fresh.slice(-MAX_ITEMS)) {
        const li = recordItem(rec, laneId);
        if (rec.return_id && rec.return_id === tl.id) li.classList.add('sel');
        if (animate && !reducedMotion) li.classList.add('enter');
        lane.list.prepend(li);
      }
      while (lane.list.children.length > MAX_ITEMS) {
        const last = lane.list.lastElementChild;
        if (focused && last === document.activeElement) last.previousElementSibling.focus();
        last.remove();
      }
      // The Tab stop: the focused item while the focus is in the list (the last one shown, if
      // the narrow layout hides it now), else the one it was (or the newest, if that one is
      // gone or hidden now).
      let active = focused && lane.list.contains(document.activeElement) ? document.activeElement : null;
      if (active && active.getClientRects().length === 0) active = itemsOf(lane.list).pop() || null;
      const stop = rove(lane.list, active);
      if (active && stop && document.activeElement !== stop) stop.focus();
    }
  }

  // ---------------------------------------------------------------- live connection

  // One EventSource while the tab is visible, none while it is hidden: a browser allows six
  // connections to a host, so six hidden tabs holding a stream each would leave none for the
  // seventh. Without the stream, GET /teams every second (not while hidden either).
  let source = null;
  let pollTimer = null;
  let reconnectTimer = null;
  let liveState = null;
  let liveText = null; // what setLive was told; the indicator may say more (see showLive)
  let silent = false; // the stream is open, but no `teams` came for more than STALE_MS
  let logDown = null; // the message of the latest `unavailable`, until the next `teams`
  let lastTeamsAt = 0; // when the numbers last came (Date.now())
  let watchFrom = Date.now(); // since when numbers are expected: the page's load, or the tab's return
  const STALE_MS = 3000;

  // data-state is the stream's; the text says whether what comes is current: an open stream
  // with the log down, or gone quiet, is not "Live".
  function setLive(state, text) {
    liveState = state;
    liveText = text || null;
    checkStale();
  }

  function showLive() {
    const node = document.querySelector('[data-testid=live]');
    const state = liveState || 'closed';
    setAttr(node, 'data-state', state);
    let shown = liveText || 'Disconnected';
    if (state === 'open') shown = logDown ? 'Log unavailable' : silent ? 'No updates' : liveText || 'Live';
    node.classList.toggle('polling', state !== 'open' && shown === 'Polling');
    node.classList.toggle('down', !!logDown || authBlocked || (state === 'open' && silent));
    node.title = logDown ? `The log does not answer: ${logDown}` : '';
    setText($('live-text'), shown);
  }

  // The lanes' numbers are stale while the log is down, a token is missing, or nothing came for
  // more than STALE_MS: dimmed, and said why, since when.
  function checkStale() {
    if (liveState === null) return;
    silent = liveState === 'open' && Date.now() - Math.max(lastTeamsAt, watchFrom) > STALE_MS;
    showLive();
    if (document.hidden) return;
    const wrap = $('lanes-wrap');
    let why = null;
    if (authBlocked) why = "Token needed: enter this server's token to see the teams";
    else if (logDown) why = `Log unavailable: ${logDown}`;
    else if (Date.now() - Math.max(lastTeamsAt, watchFrom) > STALE_MS) {
      why = liveState === 'open' ? 'No update from the server for a while' : $('live-text').textContent.replace(/…$/, '');
    }
    const asof = lastTeamsAt ? `numbers as of ${clock(new Date(lastTeamsAt).toISOString())}` : 'no numbers yet';
    setAttr(wrap, 'data-stale', !!why);
    const text = why ? `${why} · ${asof}` : '';
    setText($('lanes-stale'), text);
    $('lanes-stale').title = text;
    const laneNote = lastTeamsAt ? `stale · as of ${clock(new Date(lastTeamsAt).toISOString())}` : 'no numbers yet';
    for (const lane of lanes.values()) setText(lane.asof, why ? laneNote : '');
  }
  setInterval(checkStale, 500);

  async function pollTeams() {
    pollTimer = null;
    if (liveState === 'open' || document.hidden || authBlocked) return;
    try {
      const { data } = await api('/teams');
      logDown = null;
      onTeams(data);
      if (liveState !== 'open') setLive('closed', 'Polling');
    } catch (e) {
      if (e.status === 503) logDown = e.message;
      if (liveState !== 'open') {
        setLive('closed', e.status === 401 ? 'Token needed' : e.status === 503 ? 'Log unavailable' : 'Disconnected');
      }
    }
    if (liveState !== 'open' && !pollTimer && !document.hidden && !authBlocked) pollTimer = setTimeout(pollTeams, 1000);
  }

  function startPolling() {
    if (!pollTimer) pollTimer = setTimeout(pollTeams, 0);
  }

  function stopPolling() {
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  // (Re)open the stream; the one before, if any, is closed first.
  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (source) {
      source.close();
      source = null;
    }
    if (document.hidden) return;
    // Set again before each stream: another tab of this server may have cleared it.
    if (token()) setCookie(token());
    if (!('EventSource' in window)) {
      startPolling();
      return;
    }
    const es = new EventSource('/events');
    source = es;
    const mine = (f) => (e) => {
      if (source === es) f(e);
    };
    es.addEventListener('open', mine(() => setLive('open')));
    es.addEventListener('teams', mine((e) => {
      const was = logDown;
      logDown = null;
      if (liveState !== 'open' || was) setLive('open');
      onTeams(parse(e.data));
      checkStale();
    }));
    // The log does not answer (at connect, then every 500 ms while it lasts): the stream is
    // open, the numbers are not current.
    es.addEventListener('unavailable', mine((e) => {
      const d = parse(e.data);
      logDown = (d && d.error && d.error.message) || 'the log does not answer';
      setLive('open');
    }));
    // The first message after connecting replays each lane's latest: shown without animation.
    let replay = true;
    es.addEventListener('records', mine((e) => {
      onRecords(parse(e.data), !replay);
      replay = false;
    }));
    es.addEventListener('error', mine(() => {
      logDown = null;
      setLive('closed', authBlocked ? 'Token needed' : 'Reconnecting…');
      // GET /teams meanwhile; it also tells whether the stream was refused for want of the
      // token (a 401 shows the token field and stops the retries until it is entered).
      startPolling();
      if (es.readyState === EventSource.CLOSED) {
        // Refused (a 401, an older server without /events): try again later.
        es.close();
        source = null;
        reconnectTimer = setTimeout(() => {
          if (!authBlocked) connect();
        }, 5000);
      }
    }));
  }

  // Everything the page shows, asked again now (the tab is back, a token was entered).
  async function refreshNow() {
    stats.now();
    compare.now();
    if (tl.id) fetchTimeline();
    if (sampleFailed) newSample();
    try {
      const { data } = await api('/teams');
      onTeams(data);
      checkStale();
    } catch {
      // the stream or the polling says why
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      stopPolling();
      if (source) {
        source.close();
        source = null;
      }
      setLive('closed', 'Paused (tab hidden)');
    } else {
      watchFrom = Date.now();
      setLive('closed', 'Connecting…');
      connect();
      refreshNow();
    }
  });

  function parse(text) {
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  // ---------------------------------------------------------------- timeline

  const tl = { id: null, gen: 0, timer: null, inflight: false, again: false, json: '', seen: new Set(), complete: false };
  const tlNode = $('timeline');
  const tlBody = $('timeline-body');

  function openTimeline(id, scroll) {
    if (!id) return;
    if (id !== tl.id) {
      tl.id = id;
      markSelected();
      tl.gen++;
      tl.json = '';
      tl.misses = 0;
      tl.seen = new Set();
      tl.complete = false;
      clearTimeout(tl.timer);
      tlNode.setAttribute('data-return-id', id);
      tlNode.setAttribute('data-complete', 'false');
      fill(tlBody, el('p', { class: 'empty' }, 'Loading ', el('code', null, id), '…'));
    }
    tl.misses = 0;
    $('open-id').value = id;
    // A link to this view: #return=<id> opens it on load.
    history.replaceState(null, '', `#return=${encodeURIComponent(id)}`);
    // Chosen from a lane or a link: bring the panel into view at once (a smooth scroll is
    // slower to read and leaves the page between two places for a moment).
    if (scroll) {
      const r = tlNode.getBoundingClientRect();
      if (r.top < 0 || r.top > window.innerHeight - 120) tlNode.scrollIntoView({ block: 'start' });
      $('timeline-h').focus({ preventScroll: true });
    }
    fetchTimeline();
  }

  // The open return's events stand out in every lane.
  function markSelected() {
    for (const li of lanesNode.querySelectorAll('li.sel')) li.classList.remove('sel');
    if (!tl.id) return;
    for (const li of lanesNode.querySelectorAll(`li[data-return-id="${CSS.escape(tl.id)}"]`)) li.classList.add('sel');
  }

  $('to-lanes').addEventListener('click', () => {
    $('lanes-h').scrollIntoView({ block: 'start' });
    const li = tl.id && lanesNode.querySelector(`li[data-return-id="${CSS.escape(tl.id)}"]`);
    if (li) li.focus({ preventScroll: true });
  });

  $('open-return').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('open-id').value.trim();
    if (id) openTimeline(id, false);
  });

  function timelineNudge() {
    clearTimeout(tl.timer);
    tl.timer = setTimeout(fetchTimeline, 150);
  }

  async function fetchTimeline() {
    clearTimeout(tl.timer);
    // A hidden tab asks nothing; its return asks again.
    if (!tl.id || document.hidden) return;
    if (tl.inflight) {
      tl.again = true;
      return;
    }
    const gen = tl.gen;
    tl.inflight = true;
    let retry = true;
    try {
      const { data } = await api(`/returns/${encodeURIComponent(tl.id)}`);
      if (gen !== tl.gen) return;
      tl.misses = 0;
      tl.complete = !!data.complete;
      tlNode.setAttribute('data-complete', String(tl.complete));
      const json = JSON.stringify(data);
      if (json !== tl.json) {
        tl.json = json;
        renderTimeline(data);
      }
      // Complete means the request and every team's decision are read; a timeline without its
      // request is never final, whatever the server says.
      retry = !tl.complete || !data.request;
    } catch (e) {
      if (gen !== tl.gen) return;
      // 404: accepted elsewhere and not read yet, 503: the log is not open; others are final.
      // 404 for half a minute: most likely a mistyped id; stop asking.
      tl.misses = e.status === 404 ? (tl.misses || 0) + 1 : 0;
      retry = e.status === 0 || e.status === 503 || (e.status === 404 && tl.misses < 30);
      tl.json = '';
      fill(tlBody, el('p', { class: 'err' }, e.message),
        el('p', { class: 'muted small' }, retry ? 'Trying again every second.' : 'Not asking again; open it once more to retry.'));
    } finally {
      if (gen === tl.gen) {
        tl.inflight = false;
        if (tl.again) {
          tl.again = false;
          retry = true;
          tl.timer = setTimeout(fetchTimeline, 0);
        } else if (retry) {
          tl.timer = setTimeout(fetchTimeline, 1000);
        }
      } else {
        tl.inflight = false;
        tl.again = false;
        fetchTimeline();
      }
    }
  }

  // Causal order: an event comes after the event that caused it; siblings by time.
  function causalOrder(entries) {
    const byId = new Map(entries.map((e) => [e.event_id, e]));
    const children = new Map();
    const roots = [];
    for (const e of entries) {
      if (e.causation_id && e.causation_id !== e.event_id && byId.has(e.causation_id)) {
        if (!children.has(e.causation_id)) children.set(e.causation_id, []);
        children.get(e.causation_id).push(e);
      } else roots.push(e);
    }
    const byTime = (a, b) => (Date.parse(a.time) - Date.parse(b.time)) || (a.offset - b.offset);
    const out = [];
    const visit = (e, depth) => {
      if (out.length > entries.length) return; // a cycle in bad data: stop
      out.push([e, depth]);
      for (const c of (children.get(e.event_id) || []).sort(byTime)) visit(c, depth + 1);
    };
    for (const r of roots.sort(byTime)) visit(r, 0);
    return out;
  }

  // The audit's outcome less what the type says already: `OrderRefunded` adds nothing,
  // `RefundRejected (rejected: OrderAlreadyRefunded)` adds `rejected: OrderAlreadyRefunded`.
  function outcomeNote(e) {
    const type = shortType(e.event_type);
    const text = String(e.outcome || '');
    if (!text.startsWith(type)) return text;
    return text.slice(type.length).trim().replace(/^\((.*)\)$/, '$1');
  }

  function teamStatusCell(name, st, t0) {
    const status = st ? st.status : 'pending';
    const when = st && st.at && t0 ? Date.parse(st.at) - t0 : null;
    return el('div', { class: `tstat st-${status}`, 'data-team': name, 'data-status': status },
      el('span', { class: 'tstat-team' }, name),
      el('span', { class: 'tstat-status' }, status === 'pending' ? (REACTING.includes(name) ? 'pending' : 'not yet') : shortType(st.event_type)),
      el('span', { class: 'tstat-note' }, st && st.reason ? st.reason : when !== null ? `+${fmtMs(when)}` : ''));
  }

  function renderTimeline(d) {
    const t0 = d.request ? Date.parse(d.request.published_at) : null;
    const statuses = new Map((d.teams || []).map((s) => [s.team, s]));
    const decided = REACTING.filter((t) => statuses.get(t) && statuses.get(t).status !== 'pending').length;
    const head = el('div', { class: 'tl-head' },
      el('code', { class: 'tl-id' }, d.return_id),
      el('span', { class: `chip ${d.complete ? 's-accepted' : 's-pending'}` }, d.complete ? 'complete' : `${decided} of ${REACTING.length} teams decided`),
      d.request ? el('span', { class: 'muted small' }, `requested ${clock(d.request.requested_at, false)} · published ${clock(d.request.published_at, true)}`) : el('span', { class: 'muted small' }, 'not on the log yet'));
    const grid = el('div', { class: 'tstats' }, ...TEAMS.map((t) => teamStatusCell(t.id, statuses.get(t.id), t0)));
    const parts = [head, grid];
    if (d.unreadable_request) {
      parts.push(el('p', { class: 'err' }, `The request on the log is unreadable (${d.unreadable_request.kind}): ${d.unreadable_request.reason}`));
    }
    const list = el('ol', { class: 'tl-list', 'aria-label': 'Events in causal order' });
    const entries = causalOrder(d.timeline || []);
    const firstRender = tl.seen.size === 0;
    for (const [e, depth] of entries) {
      const team = String(e.team || '');
      const dead = team.includes('dead letter');
      const cls = dead ? 'o-rejected' : /rejected|not readable/.test(e.outcome) ? 'o-rejected' : team === 'user-support' ? 'o-request' : 'o-accepted';
      const delta = t0 ? Date.parse(e.time) - t0 : null;
      const li = el('li', { class: `tl-entry ${cls}`, 'data-testid': 'timeline-entry', 'data-team': team, 'data-event-id': e.event_id, style: `--depth:${Math.min(depth, 4)}` },
        el('span', { class: 'tl-time' }, clock(e.time, true)),
        el('span', { class: 'tl-delta' }, delta !== null && team !== 'user-support' ? `+${fmtMs(delta)}` : ''),
        el('span', { class: 'tl-team' }, depth ? el('span', { class: 'tl-caused', title: 'caused by the event above', 'aria-label': 'caused by the event above' }, '↳') : null, el('span', null, team)),
        el('span', { class: 'tl-main' },
          el('span', { class: 'tl-type' }, shortType(e.event_type)),
          outcomeNote(e) ? el('span', { class: 'tl-outcome' }, outcomeNote(e)) : null),
        el('details', { class: 'tl-data' },
          el('summary', null, `${e.topic} · p${e.partition} · @${e.offset}`),
          el('pre', null, JSON.stringify({ event_id: e.event_id, correlation_id: e.correlation_id, causation_id: e.causation_id, data: e.data }, null, 2))));
      if (!tl.seen.has(e.event_id)) {
        if (!firstRender && !reducedMotion) li.classList.add('enter');
        tl.seen.add(e.event_id);
      }
      list.append(li);
    }
    if (!entries.length) list.append(el('li', { class: 'empty' }, 'No events on the log yet for this return.'));
    parts.push(list);
    // Keep open payloads open across refreshes.
    const open = new Set([...tlBody.querySelectorAll('li[data-event-id] details[open]')].map((x) => x.closest('li').getAttribute('data-event-id')));
    fill(tlBody, ...parts);
    for (const li of tlBody.querySelectorAll('li[data-event-id]')) {
      if (open.has(li.getAttribute('data-event-id'))) li.querySelector('details').open = true;
    }
  }

  // ---------------------------------------------------------------- charts

  // Horizontal bars. rows: [{label, values:[..], text}], series: number of values per row.
  function barChart(box, rows, opts) {
    const width = Math.max(220, Math.floor(box.clientWidth || 300));
    const series = opts.series || 1;
    const rowH = opts.rowH || (series > 1 ? 30 : 22);
    const top = 4;
    // The box keeps the height of a full chart, so data arriving (or a category more) moves nothing.
    box.style.minHeight = `${opts.emptyH || 120}px`;
    if (!rows.length) {
      // Still a chart (the same place, the same height), saying why it is empty.
      const h = opts.emptyH || 120;
      fill(box, svg('svg', { width, height: h, viewBox: `0 0 ${width} ${h}`, role: 'img', 'aria-label': `${opts.label}: ${opts.empty || 'no data yet'}`, class: 'bars empty' },
        svg('rect', { x: 0, y: 0, width, height: h, rx: 6, class: 'track' }),
        svg('text', { x: width / 2, y: h / 2, class: 'none', 'text-anchor': 'middle', 'dominant-baseline': 'central' }, opts.empty || 'No data yet.')));
      return;
    }
    const labelW = Math.min(opts.labelW || 150, Math.floor(width * 0.4));
    const valueW = Math.min(opts.valueW || 64, Math.floor(width * 0.2));
    const barW = width - labelW - valueW - 8;
    const max = Math.max(1e-9, ...rows.flatMap((r) => r.values.map((v) => v || 0)));
    const height = top + rows.length * rowH;
    const s = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': opts.label, class: 'bars' });
    const title = svg('title', null, opts.label);
    s.append(title);
    rows.forEach((r, i) => {
      const y = top + i * rowH;
      const g = svg('g', { class: 'row' });
      g.append(svg('title', null, r.tip || `${r.label}: ${r.text}`));
      // Labels are monospace (about 0.6 em a character): a long one is cut to fit, whole in the tooltip.
      const fit = Math.max(4, Math.floor((labelW - 10) / 6.9));
      const label = r.label.length > fit ? `${r.label.slice(0, fit - 1)}…` : r.label;
      g.append(svg('text', { x: labelW - 8, y: y + rowH / 2, class: 'lbl', 'text-anchor': 'end', 'dominant-baseline': 'central' }, label));
      g.append(svg('rect', { x: labelW, y: y + 2, width: barW, height: rowH - 4, class: 'track', rx: 2 }));
      const thick = Math.max(4, Math.floor((rowH - 6) / series) - (series > 1 ? 1 : 0));
      r.values.forEach((v, j) => {
        const w = Math.max(v > 0 ? 1.5 : 0, (barW * (v || 0)) / max);
        g.append(svg('rect', { x: labelW, y: y + 3 + j * (thick + 1), width: w, height: thick, class: `bar s${j}`, rx: 1.5 }));
      });
      if (r.overlay !== undefined) {
        const w = (barW * r.overlay) / max;
        g.append(svg('rect', { x: labelW, y: y + 3, width: w, height: thick, class: 'bar k1', rx: 1.5 }));
      }
      g.append(svg('text', { x: width - 2, y: y + rowH / 2, class: 'val', 'text-anchor': 'end', 'dominant-baseline': 'central' }, r.text));
      s.append(g);
    });
    fill(box, s);
  }

  function sumBy(items, key, val) {
    const m = new Map();
    for (const it of items || []) m.set(it[key], (m.get(it[key]) || 0) + (it[val] || 0));
    return m;
  }

  let lastStats = null;
  let statsJson = '';

  function renderStats(s) {
    lastStats = s;
    const kpi = (label, value, note) => el('div', { class: 'kpi' }, el('span', { class: 'kpi-label' }, label), el('span', { class: 'kpi-value' }, value), el('span', { class: 'kpi-note' }, note || ''));
    const refunds = s.refunds || [];
    const disposal = [...sumBy(s.disposal_cost_by_month, 'currency', 'total_minor')];
    const disposalCount = (s.disposal_cost_by_month || []).reduce((a, r) => a + (r.count || 0), 0);
    const backorders = (s.backorders_by_model || []).reduce((a, r) => a + (r.count || 0), 0);
    const skipped = Object.values(s.skipped || {}).reduce((a, n) => a + n, 0);
    fill($('kpis'),
      kpi('Returns', fmtInt(s.returns), 'seen by the analytics view'),
      kpi('Refunded', refunds.length ? refunds.map((r) => fmtMoney(r.total_minor, r.currency)).join(' · ') : '—',
        `${fmtInt(refunds.reduce((a, r) => a + r.count, 0))} refunds`),
      kpi('Disposal charged', disposal.length ? disposal.map(([c, m]) => fmtMoney(m, c)).join(' · ') : '—', `${fmtInt(disposalCount)} charges`),
      kpi('Backordered', fmtInt(backorders), (s.backorders_by_model || []).slice().sort((a, b) => b.count - a.count).slice(0, 2).map((b) => `${b.model} ${b.count}`).join(', ') || 'none'),
      kpi('Unreadable', fmtInt(skipped), skipped ? Object.entries(s.skipped).map(([k, n]) => `${k} ${n}`).join(', ') : 'records skipped'));

    const byModel = [...sumBy(s.returns_by_model_month, 'model', 'returns')].sort((a, b) => b[1] - a[1]);
    barChart($('chart-model'), byModel.map(([m, n]) => ({ label: m, values: [n], text: fmtInt(n) })),
      { label: 'Returns by model', empty: 'No returns yet.', emptyH: 8 * 22 + 4 });

    const defects = new Map();
    for (const r of s.returns_by_defect_month || []) {
      const d = defects.get(r.defect) || { n: 0, arrival: 0 };
      d.n += r.returns || 0;
      d.arrival += r.noticed_on_arrival || 0;
      defects.set(r.defect, d);
    }
    barChart($('chart-defect'), [...defects].sort((a, b) => b[1].n - a[1].n).map(([d, v]) => ({
      label: d, values: [v.n], overlay: v.arrival, text: fmtInt(v.n), tip: `${d}: ${v.n} returns, ${v.arrival} noticed on arrival`,
    })), { label: 'Returns by defect', empty: 'No returns yet.', emptyH: 8 * 22 + 4, labelW: 170 });

    const lat = (s.latency_ms || []).filter((l) => l.count > 0);
    barChart($('chart-latency'), lat.map((l) => ({
      label: l.team, values: [l.p50, l.p95, l.p99], text: `p99 ${fmtMs(l.p99)}`,
      tip: `${l.team} (${l.count} events): p50 ${fmtMs(l.p50)}, p95 ${fmtMs(l.p95)}, p99 ${fmtMs(l.p99)}, max ${fmtMs(l.max)}`,
    })), { label: 'Team latency p50, p95, p99', series: 3, empty: 'No team has decided yet.', emptyH: 5 * 30 + 4, labelW: 110, valueW: 92 });

    const months = (s.disposal_cost_by_month || []).slice().sort((a, b) => String(a.month).localeCompare(String(b.month))).slice(-8);
    barChart($('chart-disposal'), months.map((m) => ({
      label: `${m.month} ${m.currency}`, values: [m.total_minor], text: fmtMoneyShort(m.total_minor, m.currency),
      tip: `${m.month}: ${fmtMoney(m.total_minor, m.currency)} over ${m.count} charges`,
    })), { label: 'Disposal charged by month', empty: 'Nothing charged yet.', emptyH: 5 * 30 + 4, labelW: 110, valueW: 72 });
  }

  async function readStats() {
    try {
      const { data } = await api('/stats');
      const json = JSON.stringify(data);
      if (json !== statsJson) {
        statsJson = json;
        renderStats(data);
      }
      setText($('stats-note'), `The analytics view, refreshed every 3 s; last ${clock(new Date().toISOString())}.`);
      $('stats-note').classList.remove('err');
    } catch (e) {
      setText($('stats-note'), e.message);
      $('stats-note').classList.add('err');
    }
  }
  const stats = poller(readStats, 3000);

  // Charts are drawn at their box's width: again when it changes (a resize, a scrollbar).
  let chartWidth = 0;
  let resizeTimer = null;
  new ResizeObserver(() => {
    const w = $('chart-model').clientWidth;
    if (w === chartWidth) return;
    chartWidth = w;
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => lastStats && renderStats(lastStats), 100);
  }).observe($('chart-model'));

  // ---------------------------------------------------------------- compare

  const cmpNode = $('compare');
  const cmpBody = $('compare-body');
  let cmpKey = null;

  function renderCompareEmpty(message) {
    cmpNode.setAttribute('data-state', 'empty');
    cmpKey = null;
    fill(cmpBody, el('div', { class: 'empty-state' },
      el('p', null, message || 'No comparison yet for this data directory.'),
      el('p', { class: 'muted' }, 'Run one (it sends the same returns through a traditional, synchronous model and the event-sourced one, with a team down for a while), then this panel shows the result:'),
      el('pre', { class: 'cmd' }, HINT_COMPARE)));
  }

  function renderCompare(c) {
    const t = c.traditional || {};
    const e = c.event_sourced || {};
    const lat = (m, p) => (m.latency_ms ? m.latency_ms[p] : null);
    const lacks = (m) => Object.entries(m.missing_by_team || {}).map(([team, n]) => `${team} ${fmtInt(n)}`).join(', ') || '—';
    // [label, traditional, event-sourced, which is better: 'high' | 'low' | null, formatter]
    const rows = [
      ['Submitted', t.submitted, e.submitted, null, fmtInt],
      ['Accepted by User Support', t.accepted, e.accepted, 'high', fmtInt],
      ['Refused to the customer', t.refused, e.refused, 'low', fmtInt],
      ['Complete (all four teams)', t.complete, e.complete, 'high', fmtInt],
      ['Partial (some teams)', t.partial, e.partial, 'low', fmtInt],
      ['Partial returns lack', lacks(t), lacks(e), null, (v) => v],
      ['Lost', t.lost, e.lost, 'low', fmtInt],
      ['Duplicate effects', t.duplicates, e.duplicates, 'low', fmtInt],
      ['User Support latency p50', lat(t, 'p50'), lat(e, 'p50'), 'low', fmtMs],
      ['User Support latency p99', lat(t, 'p99'), lat(e, 'p99'), 'low', fmtMs],
      ['Time to converge', t.converge_ms, e.converge_ms, 'low', (v) => (v === null || v === undefined ? 'never' : fmtMs(v))],
    ];
    const better = (a, b, dir) => {
      if (!dir || a === b) return [false, false];
      const an = a === null || a === undefined ? Infinity : a;
      const bn = b === null || b === undefined ? Infinity : b;
      return dir === 'high' ? [an > bn, bn > an] : [an < bn, bn < an];
    };
    const tbody = el('tbody');
    for (const [label, a, b, dir, f] of rows) {
      const [ba, bb] = better(a, b, dir);
      tbody.append(el('tr', null, el('th', { scope: 'row' }, label),
        el('td', { class: ba ? 'better' : null }, f(a)), el('td', { class: bb ? 'better' : null }, f(b))));
    }
    const table = el('table', { class: 'cmp' },
      el('thead', null, el('tr', null, el('th', null, el('span', { class: 'sr' }, 'Measure')), el('th', { scope: 'col' }, 'Traditional'), el('th', { scope: 'col' }, 'Event-sourced'))),
      tbody);
    const secs = (ms) => `${+(ms / 1000).toFixed(2)}`;
    const outages = (c.outages || []).map((o) => `${o.team} down from ${secs(o.start_ms)} s to ${secs(o.end_ms)} s`);
    const extra = [
      ...Object.entries(c.latency_ms || {}).map(([team, ms]) => `${team} +${ms} ms per call`),
      ...Object.entries(c.error_rate || {}).map(([team, r]) => `${team} fails ${Math.round(r * 100)}%`),
    ];
    const agree = Object.entries(c.states_agree || {});
    const facts = el('ul', { class: 'facts' },
      el('li', null, el('b', null, fmtInt(c.returns)), ' returns, each model on its own stores'),
      el('li', { class: 'muted small' }, 'log ', el('code', null, c.log || '?')),
      el('li', null, outages.length ? outages.join(', ') : 'no outage', extra.length ? `; ${extra.join(', ')}` : ''),
      agree.length ? el('li', null, 'Team stores agree: ', ...agree.map(([team, ok]) => el('span', { class: `chip ${ok ? 's-accepted' : 's-error'}` }, `${team} ${ok ? '✓' : '✗'}`))) : null,
      c.finished_at ? el('li', { class: 'muted' }, `finished ${new Date(c.finished_at).toLocaleString('en-GB')}`) : null);
    const src = `${c.chart || '/compare/chart.svg'}?t=${encodeURIComponent(c.finished_at || '')}`;
    const img = el('img', { src, alt: 'Returns complete over time, traditional beside event-sourced, with the outage windows shaded', class: 'cmp-chart', loading: 'lazy' });
    img.addEventListener('error', () => img.replaceWith(el('p', { class: 'muted chart-empty' }, 'The chart is not available.')));
    fill(cmpBody, el('div', { class: 'cmp-grid' }, el('div', null, facts, table), el('figure', { class: 'cmp-fig' }, img)));
    cmpNode.setAttribute('data-state', 'loaded');
  }

  async function readCompare() {
    try {
      const { data } = await api('/compare');
      const key = JSON.stringify(data);
      if (key !== cmpKey) {
        renderCompare(data);
        cmpKey = key;
      }
    } catch (e) {
      if (e.status === 404) renderCompareEmpty();
      else if (cmpNode.getAttribute('data-state') !== 'loaded') renderCompareEmpty(e.message);
    }
  }
  const compare = poller(readCompare, 10000);

  // ---------------------------------------------------------------- start

  const linked = /^#return=(.+)$/.exec(location.hash);
  if (linked) openTimeline(decodeURIComponent(linked[1]), true);
  renderCompareEmpty();
  setLive('closed', 'Connecting…');
  connect();
  startPolling();
  newSample();
  stats.now();
  compare.now();
})();
