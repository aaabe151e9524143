// leanpoint status page: redraws the server-rendered page from /status,
// /api/upstreams and /api/history every few seconds, without reloading.
// No library, no build step, nothing fetched from anywhere but this origin
// (the page's Content-Security-Policy enforces it). Every value from the
// server goes into the page through textContent or setAttribute, never
// parsed as markup: upstream names and error texts are network input.
(function () {
  'use strict';

  var REFRESH_MS = 2000;
  var PLOT_WINDOW_MS = 5 * 60 * 1000;
  var PLOT_MAX_LINES = 24;
  var SPARK_SAMPLES = 30;
  var AGREED_FRESH_MS = 5000;
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f',
    '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#79706e'];
  var STANDINGS = ['agreeing', 'behind', 'ahead', 'conflicting', 'unknown',
    'failing', 'disagreeing'];

  // What /api/history has sent so far, bounded by the capacities it reports.
  var after = 0;
  var capacity = { checkpoints: 64, agreed_samples: 300, samples_per_upstream: 120 };
  var checkpoints = [];
  var agreed = [];
  var samples = {};
  // Server clock minus ours, so ages need no synchronised client clock.
  var skew = 0;

  function $(id) { return document.getElementById(id); }
  function serverNow() { return Date.now() + skew; }

  function setText(id, text) {
    var e = $(id);
    if (e) e.textContent = text;
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG_NS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }

  function dash(v) { return v === null || v === undefined ? '-' : String(v); }

  // The same rules as status_page.rs, so a redraw reads like the first render.
  function latency(us) {
    if (us === null || us === undefined) return '-';
    if (us < 1000) return us + ' \u00b5s';
    if (us < 10000) return (us / 1e3).toFixed(2) + ' ms';
    if (us < 1e6) return (us / 1e3).toFixed(1) + ' ms';
    return (us / 1e6).toFixed(2) + ' s';
  }

  function bytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1048576).toFixed(2) + ' MiB';
  }

  function age(ms) {
    var s = Math.floor(Math.max(0, ms) / 1000);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function lag(agreedSlot, own) {
    if (agreedSlot === null || agreedSlot === undefined || own === null || own === undefined) return '-';
    if (own < agreedSlot) return (agreedSlot - own) + ' behind';
    if (own > agreedSlot) return (own - agreedSlot) + ' ahead';
    return '0';
  }

  function rootNode(r) {
    if (!r) return document.createTextNode('-');
    var c = el('code', r.length > 16 ? r.slice(0, 10) + '\u2026' + r.slice(-4) : r);
    c.title = r;
    return c;
  }

  function fill(cell, node) {
    cell.replaceChildren(node);
  }

  function standingClass(s) {
    return STANDINGS.indexOf(s) >= 0 ? 'st-' + s : 'st-other';
  }

  async function getJSON(path) {
    var r = await fetch(path, { cache: 'no-store', credentials: 'same-origin' });
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return r.json();
  }

  function renderHeader(st) {
    var serving = $('serving');
    serving.textContent = st.serving ? 'SERVING' : 'NOT SERVING';
    serving.className = 'big ' + (st.serving ? 'ok' : 'bad');
    var why = st.last_error || '';
    if (st.served_contradicted === true) why = 'most upstreams contradict the served checkpoint. ' + why;
    setText('serving-why', why);
    var has = st.served_state_slot !== null && st.served_state_slot !== undefined;
    setText('served-slot', dash(st.served_state_slot));
    // Served-pair fields of newer servers, else what this one reports.
    var block = st.served_block_root || (has ? st.finalized_root : null);
    fill($('served-block-root'), rootNode(block));
    fill($('served-state-root'), rootNode(st.served_state_root || null));
    // Newer servers also report the block's size and whether the pair is
    // proven by hash tree roots; older ones do not, and nothing is shown.
    var size = has ? bytes(st.served_state_bytes) : '-';
    if (has && st.served_block_bytes) size = 'state ' + size + ' \u00b7 block ' + bytes(st.served_block_bytes);
    if (has && st.served_pair_verified === true) size += ' \u00b7 verified';
    if (has && st.served_pair_verified === false) size += ' \u00b7 slot only';
    setText('served-size', size);
    setText('finality-age', st.finalized_advanced_ms ? age(st.now_ms - st.finalized_advanced_ms) + ' ago' : 'never');
    setText('finalized-slot', dash(st.finalized_slot));
    setText('justified-slot', dash(st.justified_slot));
    var a = $('agreement');
    a.textContent = st.agreeing + ' / ' + st.required;
    a.className = 'big ' + (st.required > 0 && st.agreeing >= st.required ? 'ok' : 'bad');
    setText('rule', st.rule);
    setText('fds', st.open_fds === null || st.open_fds === undefined ? '-' : st.open_fds + ' / ' + st.max_fds);
  }

  function sparkline(name) {
    var list = (samples[name] || []).slice(-SPARK_SAMPLES);
    var w = 3 * SPARK_SAMPLES, h = 18;
    var s = svg('svg', { width: w, height: h, viewBox: '0 0 ' + w + ' ' + h, role: 'img' });
    var max = 1;
    list.forEach(function (p) { if (p.ok) max = Math.max(max, p.latency_us); });
    var failed = 0;
    list.forEach(function (p, i) {
      // Log scale: 10 µs and 500 ms both stay visible in 18 pixels.
      var bh = p.ok ? Math.max(2, h * Math.log(1 + p.latency_us) / Math.log(1 + max)) : h;
      if (!p.ok) failed++;
      s.appendChild(svg('rect', { x: i * 3, y: h - bh, width: 2, height: bh,
        fill: p.ok ? '#59a14f' : '#b00020' }));
    });
    var t = svg('title', {});
    t.textContent = list.length + ' polls, ' + failed + ' failed, slowest ' + latency(max);
    s.appendChild(t);
    return s;
  }

  function renderUpstreams(up) {
    var tbody = $('upstreams').tBodies[0];
    var agreedSlot = up.consensus.finalized_slot;
    var rows = up.upstreams.map(function (u) {
      var tr = el('tr');
      tr.setAttribute('data-name', u.name);
      var cells = [u.name, null, null, lag(agreedSlot, u.last_finalized_slot), dash(u.head_slot),
        dash(u.last_justified_slot), dash(u.last_finalized_slot), u.source, null,
        latency(u.last_latency_us), null];
      var td = cells.map(function (c) { return el('td', c); });
      td[1].appendChild(el('code', u.url));
      var st = el('span', u.standing, 'standing ' + standingClass(u.standing));
      st.setAttribute('data-standing', u.standing);
      if (u.standing_reason) st.title = u.standing_reason;
      td[2].appendChild(st);
      td[8].className = 'err';
      if (u.last_error_kind && u.last_error) {
        td[8].appendChild(el('code', u.last_error_kind));
        td[8].appendChild(document.createTextNode(' ' + u.last_error));
      }
      if (u.pair_error_kind && u.pair_error) {
        if (td[8].childNodes.length) td[8].appendChild(el('br'));
        td[8].appendChild(el('code', 'pair ' + u.pair_error_kind));
        td[8].appendChild(document.createTextNode(' ' + u.pair_error));
      }
      if (!td[8].childNodes.length) td[8].textContent = '-';
      td[10].className = 'spark';
      td[10].appendChild(sparkline(u.name));
      td.forEach(function (c) { tr.appendChild(c); });
      return tr;
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  function merge(h) {
    after = h.seq;
    capacity = h.capacity;
    h.checkpoints.forEach(function (c) {
      // A root learned later for a slot replaces that slot's entry.
      checkpoints = checkpoints.filter(function (x) { return x.slot !== c.slot; });
      checkpoints.push(c);
    });
    checkpoints.sort(function (a, b) { return a.slot - b.slot; });
    checkpoints = checkpoints.slice(-capacity.checkpoints);
    agreed = agreed.concat(h.agreed).slice(-capacity.agreed_samples);
    h.upstreams.forEach(function (u) {
      samples[u.name] = (samples[u.name] || []).concat(u.samples).slice(-capacity.samples_per_upstream);
    });
  }

  function renderTimeline() {
    var tbody = $('timeline').tBodies[0];
    var now = serverNow();
    var rows = checkpoints.slice().reverse().map(function (c) {
      var tr = el('tr');
      tr.appendChild(el('td', c.slot));
      var r = el('td');
      r.appendChild(rootNode(c.root));
      tr.appendChild(r);
      var when = el('td', age(now - c.at_ms) + ' ago');
      when.title = new Date(c.at_ms).toISOString();
      tr.appendChild(when);
      tr.appendChild(el('td', c.supporters + ' (of ' + c.required + ' required)'));
      return tr;
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  // A step line through points [t, slot]; a null slot (a failed poll) breaks it.
  function stepPath(points, x, y) {
    var d = '', prev = null;
    points.forEach(function (p) {
      if (p[1] === null || p[1] === undefined) { prev = null; return; }
      var px = x(p[0]).toFixed(1), py = y(p[1]).toFixed(1);
      d += prev === null ? 'M' + px + ' ' + py : 'H' + px + 'V' + py;
      prev = p;
    });
    return d;
  }

  function renderPlot(up) {
    var W = 900, H = 240, L = 56, R = 10, T = 10, B = 24;
    var now = serverNow(), t0 = now - PLOT_WINDOW_MS;
    var inWindow = function (p) { return p.at_ms >= t0; };
    var series = [];
    var aPts = agreed.filter(inWindow).map(function (p) { return [p.at_ms, p.finalized_slot]; });
    // Agreement is sampled at least every few seconds while it holds; an
    // older last sample means it was lost, and the line stops there.
    if (aPts.length && now - aPts[aPts.length - 1][0] < AGREED_FRESH_MS) {
      aPts.push([now, aPts[aPts.length - 1][1]]);
    }
    up.upstreams.slice(0, PLOT_MAX_LINES).forEach(function (u, i) {
      var list = (samples[u.name] || []).filter(inWindow);
      var colour = PALETTE[i % PALETTE.length];
      series.push({ name: u.name, colour: colour, width: 1.5, dash: null,
        pts: list.map(function (p) { return [p.at_ms, p.ok ? p.finalized_slot : null]; }) });
      series.push({ name: null, colour: colour, width: 1, dash: '4 3',
        pts: list.map(function (p) { return [p.at_ms, p.ok ? p.head_slot : null]; }) });
    });
    var all = aPts.slice();
    series.forEach(function (s) { all = all.concat(s.pts); });
    var first = now, lo = Infinity, hi = -Infinity;
    all.forEach(function (p) {
      first = Math.min(first, p[0]);
      if (p[1] !== null && p[1] !== undefined) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    });
    var box = $('plot');
    if (lo === Infinity) { box.replaceChildren(el('p', 'No samples yet.')); return; }
    lo = Math.max(0, lo - 1); hi = hi + 1;
    var span = Math.max(10000, now - first);
    var x = function (t) { return L + (W - L - R) * (t - (now - span)) / span; };
    var y = function (v) { return T + (H - T - B) * (hi - v) / (hi - lo); };
    var s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'finalized and head slots over time' });
    s.appendChild(svg('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: '#fafafa', stroke: '#ccc' }));
    var ticks = Math.min(6, hi - lo);
    for (var k = 0; k <= ticks; k++) {
      var v = Math.round(lo + (hi - lo) * k / ticks);
      s.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e4e4e4' }));
      var lab = svg('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#555' });
      lab.textContent = String(v);
      s.appendChild(lab);
    }
    [[now - span, '-' + age(span)], [now, 'now']].forEach(function (xt, j) {
      var t = svg('text', { x: x(xt[0]), y: H - 6, 'text-anchor': j ? 'end' : 'start', 'font-size': 11, fill: '#555' });
      t.textContent = xt[1];
      s.appendChild(t);
    });
    s.appendChild(svg('path', { d: stepPath(aPts, x, y), fill: 'none', stroke: '#000', 'stroke-width': 5, 'stroke-opacity': 0.25 }));
    series.forEach(function (sr) {
      var attrs = { d: stepPath(sr.pts, x, y), fill: 'none', stroke: sr.colour, 'stroke-width': sr.width };
      if (sr.dash) attrs['stroke-dasharray'] = sr.dash;
      s.appendChild(svg('path', attrs));
    });
    box.replaceChildren(s);
    var legend = [legendItem('#000', 'agreed finalized (wide)', 0.25)];
    series.forEach(function (sr) { if (sr.name) legend.push(legendItem(sr.colour, sr.name, 1)); });
    legend.push(el('li', 'solid: finalized · dashed: head'));
    if (up.upstreams.length > PLOT_MAX_LINES) {
      legend.push(el('li', (up.upstreams.length - PLOT_MAX_LINES) + ' more upstreams not drawn'));
    }
    var ul = $('legend');
    ul.replaceChildren.apply(ul, legend);
  }

  function legendItem(colour, name, opacity) {
    var li = el('li');
    var sw = el('span', null, 'sw');
    sw.style.background = colour;
    sw.style.opacity = String(opacity);
    li.appendChild(sw);
    li.appendChild(document.createTextNode(name));
    return li;
  }

  function setLive(ok, why) {
    var live = $('live');
    live.className = ok ? 'live' : 'live stale';
    live.textContent = ok
      ? 'live \u00b7 updated ' + new Date().toLocaleTimeString()
      : 'not updating: ' + why + ' (retrying)';
  }

  async function refresh() {
    try {
      var res = await Promise.all([getJSON('/status'), getJSON('/api/upstreams'),
        getJSON('/api/history?after=' + after)]);
      var st = res[0], up = res[1];
      skew = st.now_ms - Date.now();
      merge(res[2]);
      renderHeader(st);
      renderUpstreams(up);
      renderTimeline();
      renderPlot(up);
      setLive(true);
    } catch (e) {
      // Shown on the page; the browser console stays for real faults.
      setLive(false, e && e.message ? e.message : String(e));
    }
    setTimeout(refresh, REFRESH_MS);
  }

  refresh();
})();
