/*
 * IOps live metrics dashboard.
 *
 * Connects to the local stack's WebSocket (API Gateway emulator), applies METRICS_UPDATE
 * messages to an in-memory view of every entity and renders one card per entity with the
 * latest value and a sparkline per numeric attribute.
 *
 * Message contract (server -> client):
 *   {"type":"METRICS_UPDATE","id":"<broadcast id>","part":1,"parts":2,"stream":"<stream label>",
 *    "updates":[{"eventType":"INSERT|MODIFY|REMOVE","timestamp":<epoch ms>,
 *                "sequence":"<decimal string>","data":{...item image...}}]}
 *   {"type":"PONG"}   {"type":"ERROR","message":"..."}
 * `id`, `part`, `parts`, `stream`, `sequence` are optional (older servers omit them). Ids and
 * sequences are only comparable within one stream: a new `stream` resets what is remembered.
 *
 * Test hooks: [data-entity="<id>"] per entity card, [data-metric="<name>"] per value cell
 * (text = formatted value, data-value = raw number), #status[data-state], window.dashboard.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------- configuration

  var params = new URLSearchParams(location.search);

  function numParam(name, fallback) {
    var v = Number(params.get(name));
    return params.has(name) && Number.isFinite(v) && v > 0 ? v : fallback;
  }

  var CONFIG = {
    wsUrl: resolveWsUrl(),
    // A token for AUTH_MODE=jwt (`local token --sub NAME`): ?token=, or the token field. It is
    // sent as the WebSocket subprotocol (it stays out of URLs and access logs), or in the
    // query string with ?tokenIn=query.
    token: params.get('token') || sessionStorage.getItem('iops-token') || '',
    tokenInQuery: params.get('tokenIn') === 'query',
    pingIntervalMs: numParam('ping', 60) * 1000, // ?ping=<seconds>
    backoffBaseMs: 1000,
    backoffCapMs: 30000,
    historyPoints: 60, // sparkline length
    dedupCapacity: 1000, // remembered `${id}:${part}` keys
    retiredStreamCapacity: 16, // remembered labels of streams that were replaced
    tombstoneCapacity: 10000, // remembered sequences of removed entities
    logCapacity: 100,
    staleAfterMs: 120000, // a card not updated for this long is dimmed
    // A connection that drops sooner than this after opening does not reset the backoff,
    // so a server that accepts and immediately closes is not hammered once a second.
    stableAfterMs: 3000
  };

  function resolveWsUrl() {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var host = location.host || '127.0.0.1';
    var explicit = params.get('ws');
    if (explicit) {
      if (/^wss?:\/\//i.test(explicit)) return explicit;
      return proto + '//' + host + (explicit.charAt(0) === '/' ? '' : '/') + explicit;
    }
    var path = '/local';
    var meta = document.querySelector('meta[name="ws-path"]');
    if (meta && meta.content.trim()) path = meta.content.trim();
    var stage = params.get('stage');
    if (stage) path = stage;
    if (path.charAt(0) !== '/') path = '/' + path;
    return proto + '//' + host + path;
  }

  // ---------------------------------------------------------------- state

  /** entity id -> { id, type, metrics: {name: number}, history: {name: number[]},
   *  attributes: {name: string}, eventType, sequence, updatedAt, receivedAt, truncated } */
  var entities = Object.create(null);

  var stats = {
    state: 'connecting',
    url: CONFIG.wsUrl,
    messages: 0,
    updatesApplied: 0,
    duplicatesDropped: 0,
    outOfOrderIgnored: 0,
    stream: null, // the label of the stream updates come from
    streamResets: 0,
    retiredStreamIgnored: 0,
    truncatedUpdates: 0,
    invalidMessages: 0,
    reconnects: 0,
    lastBroadcastId: null,
    lastPart: null,
    lastParts: null,
    rttMs: null,
    lastPongAt: null,
    lastError: null,
    lastClose: null
  };

  // Bounded dedup set: Set preserves insertion order, the oldest key is evicted first.
  var seenParts = new Set();
  // Sequences of removed entities, so a late update cannot resurrect them.
  var tombstones = new Map();
  // Streams replaced by a newer one: a late part of theirs must not reset state again.
  var retiredStreams = new Set();

  var views = new Map(); // entity id -> DOM refs (kept out of `entities` so it stays plain data)

  // ---------------------------------------------------------------- helpers

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === 'text') node.textContent = attrs[k];
        else if (k === 'class') node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  var SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function parseSequence(s) {
    if (typeof s === 'number' && Number.isInteger(s) && s >= 0) return BigInt(s);
    if (typeof s !== 'string' || !/^\d+$/.test(s.trim())) return null;
    try { return BigInt(s.trim()); } catch (e) { return null; }
  }

  var fmtNum = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  var fmtFrac = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 });
  var fmtCompact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 2 });
  var fmtInt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

  /**
   * Formats a metric value (en-US, independent of the browser's locale):
   * |v| < 0.001 or >= 1e15 -> "1.20e-4"; |v| < 1 -> 3 significant digits ("0.0148");
   * |v| < 1e9 -> grouped, at most 2 decimals ("1,234.5"); else compact ("123.46B").
   * The raw number is always in the element's data-value attribute.
   */
  function formatValue(v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return String(v);
    var a = Math.abs(v);
    if (a === 0) return '0';
    if (a >= 1e15 || a < 0.001) return v.toExponential(2);
    if (a < 1) return fmtFrac.format(v);
    if (a < 1e9) return fmtNum.format(v);
    return fmtCompact.format(v);
  }

  function formatClock(ms) {
    var d = new Date(ms);
    if (isNaN(d.getTime())) return '–';
    return d.toLocaleTimeString('en-GB', { hour12: false });
  }

  function formatAgo(ms) {
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's ago';
    return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm ago';
  }

  // Sparkline hues by row position (no red: red means errors here), so rows of one card
  // differ and cards with the same metrics look alike.
  var HUES = [212, 40, 150, 275, 185, 325, 95, 250];
  function hueAt(index) { return HUES[index % HUES.length]; }

  function compareNatural(a, b) {
    return a.localeCompare(b, 'en', { numeric: true, sensitivity: 'base' });
  }

  /** The entity key: `entity_id`, else the first string attribute. */
  function entityKeyOf(data) {
    if (typeof data.entity_id === 'string' && data.entity_id !== '') return { attr: 'entity_id', id: data.entity_id };
    if (typeof data.entity_id === 'number') return { attr: 'entity_id', id: String(data.entity_id) };
    var keys = Object.keys(data);
    for (var i = 0; i < keys.length; i++) {
      if (typeof data[keys[i]] === 'string' && keys[i] !== 'truncated') return { attr: keys[i], id: data[keys[i]] };
    }
    return null;
  }

  function updateTime(update, data) {
    if (typeof data.timestamp === 'string') {
      var t = Date.parse(data.timestamp);
      if (!isNaN(t)) return t;
    }
    if (typeof data.timestamp === 'number' && Number.isFinite(data.timestamp)) {
      // epoch seconds or milliseconds
      return data.timestamp < 1e11 ? data.timestamp * 1000 : data.timestamp;
    }
    if (typeof update.timestamp === 'number' && Number.isFinite(update.timestamp)) return update.timestamp;
    return Date.now();
  }

  // ---------------------------------------------------------------- event log

  function log(text, kind) {
    var list = $('log');
    var item = el('li', { class: kind ? 'log-' + kind : '' }, [
      el('time', { datetime: new Date().toISOString(), text: formatClock(Date.now()) }),
      document.createTextNode(' ' + text)
    ]);
    list.insertBefore(item, list.firstChild);
    while (list.childElementCount > CONFIG.logCapacity) list.removeChild(list.lastChild);
  }

  function showAlert(text) {
    $('alert-text').textContent = text;
    $('alert').hidden = false;
  }

  // ---------------------------------------------------------------- message handling

  function handleRaw(raw) {
    stats.messages++;
    var text = raw;
    if (typeof raw !== 'string') {
      try { text = new TextDecoder().decode(raw); } catch (e) { text = null; }
    }
    var msg;
    try { msg = JSON.parse(text); } catch (e) {
      stats.invalidMessages++;
      log('unparsable message (' + String(text).slice(0, 80) + ')', 'warn');
      renderStats();
      return;
    }
    handleMessage(msg);
  }

  function handleMessage(msg) {
    if (!msg || typeof msg !== 'object') {
      stats.invalidMessages++;
    } else if (msg.type === 'METRICS_UPDATE') {
      handleMetricsUpdate(msg);
    } else if (msg.type === 'PONG') {
      handlePong();
    } else if (msg.type === 'ERROR') {
      stats.lastError = String(msg.message == null ? 'unknown error' : msg.message);
      log('server ERROR: ' + stats.lastError, 'error');
      showAlert('Server error: ' + stats.lastError);
    } else {
      stats.invalidMessages++;
      log('ignored message of type ' + JSON.stringify(msg.type), 'warn');
    }
    renderStats();
  }

  /**
   * Follows the stream a message came from. Broadcast ids and sequences start over in a new
   * stream (a re-enabled stream, a restarted stack), so what was remembered of the old one
   * would drop new parts as duplicates and new updates as out of order: forget it, keeping
   * the values on screen. Returns false for a late message of a stream already replaced.
   */
  function followStream(stream) {
    if (typeof stream !== 'string' || stream === '' || stream === stats.stream) return true;
    if (retiredStreams.has(stream)) {
      stats.retiredStreamIgnored++;
      return false;
    }
    if (stats.stream !== null) {
      retiredStreams.add(stats.stream);
      if (retiredStreams.size > CONFIG.retiredStreamCapacity) retiredStreams.delete(retiredStreams.values().next().value);
      forgetOrdering();
      stats.streamResets++;
      log('new stream ' + stream + ' (was ' + stats.stream + '): duplicate and order tracking reset', 'warn');
    }
    stats.stream = stream;
    return true;
  }

  /** Forgets seen parts and per-entity sequences; entities and their values stay. */
  function forgetOrdering() {
    seenParts.clear();
    tombstones.clear();
    Object.keys(entities).forEach(function (id) { entities[id].sequence = null; });
  }

  function handleMetricsUpdate(msg) {
    if (!followStream(msg.stream)) return;
    var hasId = msg.id !== undefined && msg.id !== null;
    if (hasId) {
      var part = msg.part === undefined || msg.part === null ? 1 : msg.part;
      var key = String(msg.id) + ':' + String(part);
      if (seenParts.has(key)) {
        stats.duplicatesDropped++;
        return;
      }
      seenParts.add(key);
      if (seenParts.size > CONFIG.dedupCapacity) seenParts.delete(seenParts.values().next().value);
      stats.lastBroadcastId = String(msg.id);
      stats.lastPart = part;
      stats.lastParts = msg.parts === undefined ? null : msg.parts;
    }
    var updates = Array.isArray(msg.updates) ? msg.updates : [];
    var dirty = new Set();
    var removed = new Set();
    var reorder = false;
    updates.forEach(function (u) {
      var res = applyUpdate(u);
      if (!res) return;
      if (res.removed) { removed.add(res.id); dirty.delete(res.id); } else { dirty.add(res.id); removed.delete(res.id); }
      reorder = reorder || res.removed || res.reorder;
    });
    removed.forEach(removeView);
    dirty.forEach(renderEntity);
    if (reorder) renderCollection();
  }

  /** Applies one update to `entities`; returns {id, removed, reorder} when the view changed. */
  function applyUpdate(u) {
    if (!u || typeof u !== 'object' || !u.data || typeof u.data !== 'object' || Array.isArray(u.data)) {
      stats.invalidMessages++;
      return null;
    }
    var data = u.data;
    var key = entityKeyOf(data);
    if (!key) { stats.invalidMessages++; return null; }
    var id = key.id;
    var current = entities[id];

    // Per-entity ordering: ignore anything not newer than what was last applied
    // (an equal sequence is the same stream record delivered again).
    var seq = parseSequence(u.sequence);
    if (seq !== null) {
      var lastSeqStr = current ? current.sequence : tombstones.get(id);
      var lastSeq = lastSeqStr == null ? null : parseSequence(lastSeqStr);
      if (lastSeq !== null && seq <= lastSeq) {
        stats.outOfOrderIgnored++;
        return null;
      }
    }
    var seqStr = seq === null ? (current ? current.sequence : null) : seq.toString();

    if (u.eventType === 'REMOVE') {
      if (seqStr !== null) {
        tombstones.set(id, seqStr);
        if (tombstones.size > CONFIG.tombstoneCapacity) tombstones.delete(tombstones.keys().next().value);
      }
      stats.updatesApplied++;
      if (!current) return null;
      delete entities[id];
      return { id: id, removed: true };
    }

    tombstones.delete(id);
    var truncated = data.truncated === true;
    if (truncated) stats.truncatedUpdates++;
    var now = Date.now();
    var reorder = !current;
    if (!current) {
      current = entities[id] = {
        id: id, keyAttribute: key.attr, type: null, metrics: {}, history: {}, attributes: {},
        eventType: null, sequence: null, updatedAt: null, receivedAt: null, truncated: false
      };
    }
    current.eventType = u.eventType || 'MODIFY';
    current.sequence = seqStr;
    current.updatedAt = updateTime(u, data);
    current.receivedAt = now;
    current.truncated = truncated;
    if (typeof data.entity_type === 'string' && data.entity_type !== current.type) {
      current.type = data.entity_type;
      reorder = true;
    }

    if (!truncated) {
      // The image is the whole item: numeric attributes are metrics, strings are shown as tags.
      var present = {};
      Object.keys(data).forEach(function (name) {
        var v = data[name];
        if (name === key.attr || name === 'truncated') return;
        if (typeof v === 'number' && Number.isFinite(v)) {
          present[name] = true;
          current.metrics[name] = v;
          var h = current.history[name] || (current.history[name] = []);
          h.push(v);
          if (h.length > CONFIG.historyPoints) h.splice(0, h.length - CONFIG.historyPoints);
        }
      });
      Object.keys(current.metrics).forEach(function (name) {
        if (!present[name]) { delete current.metrics[name]; delete current.history[name]; }
      });
      var attrs = {};
      Object.keys(data).forEach(function (name) {
        var v = data[name];
        if (name === key.attr || name === 'entity_type' || name === 'timestamp') return;
        if (typeof v === 'string' || typeof v === 'boolean') attrs[name] = String(v);
      });
      current.attributes = attrs;
    }
    // A truncated image carries only the keys: keep the last known values.
    stats.updatesApplied++;
    return { id: id, removed: false, reorder: reorder };
  }

  // ---------------------------------------------------------------- rendering

  function metricOrder(names) {
    return names.sort(function (a, b) {
      if (a === 'metric_value') return -1;
      if (b === 'metric_value') return 1;
      return compareNatural(a, b);
    });
  }

  function sortedIds() {
    return Object.keys(entities).sort(function (a, b) {
      var ta = entities[a].type || '', tb = entities[b].type || '';
      return compareNatural(ta, tb) || compareNatural(a, b);
    });
  }

  function createView(id) {
    var title = el('h2', { class: 'entity-id', text: id, title: id });
    var type = el('span', { class: 'badge badge-type' });
    var trunc = el('span', { class: 'badge badge-truncated', title: 'The last record was too large to send; only its keys arrived. Values shown are the last known ones.', text: 'truncated' });
    trunc.hidden = true;
    var tbody = el('tbody');
    var table = el('table', { class: 'metrics' }, [
      el('caption', { class: 'visually-hidden', text: 'Metrics of ' + id }),
      el('thead', { class: 'visually-hidden' }, [el('tr', null, [
        el('th', { scope: 'col', text: 'Metric' }), el('th', { scope: 'col', text: 'Latest value' }),
        el('th', { scope: 'col', text: 'Recent trend' })
      ])]),
      tbody
    ]);
    var noMetrics = el('p', { class: 'no-metrics', text: 'No numeric attributes yet.' });
    var tags = el('ul', { class: 'tags', 'aria-label': 'Other attributes' });
    var time = el('time', { class: 'updated-at' });
    var ago = el('span', { class: 'ago' });
    var seq = el('span', { class: 'seq' });
    var card = el('article', { class: 'entity', 'data-entity': id }, [
      el('header', null, [title, el('div', { class: 'badges' }, [type, trunc])]),
      table, noMetrics, tags,
      el('footer', null, [document.createTextNode('updated '), time, document.createTextNode(' · '), ago, seq])
    ]);
    var view = { card: card, type: type, trunc: trunc, tbody: tbody, noMetrics: noMetrics, tags: tags,
      time: time, ago: ago, seq: seq, metrics: new Map() };
    views.set(id, view);
    return view;
  }

  function createMetricRow(name) {
    var value = el('td', { class: 'value', 'data-metric': name });
    var s = svg('svg', { class: 'spark', viewBox: '0 0 100 24', preserveAspectRatio: 'none', 'aria-hidden': 'true', focusable: 'false' });
    var area = svg('path', { class: 'spark-area' });
    var line = svg('polyline', { class: 'spark-line', 'vector-effect': 'non-scaling-stroke' });
    s.appendChild(area);
    s.appendChild(line);
    var dot = el('span', { class: 'spark-dot', 'aria-hidden': 'true' });
    var wrap = el('td', { class: 'spark-cell' }, [el('div', { class: 'spark-wrap' }, [s, dot])]);
    var row = el('tr', { 'data-metric-row': name }, [el('th', { scope: 'row', class: 'metric-name', text: name, title: name }), value, wrap]);
    return { row: row, value: value, area: area, line: line, dot: dot, spark: wrap, last: undefined };
  }

  function drawSpark(m, history) {
    var n = history.length;
    var min = Infinity, max = -Infinity;
    for (var i = 0; i < n; i++) { if (history[i] < min) min = history[i]; if (history[i] > max) max = history[i]; }
    var span = max - min;
    var slots = CONFIG.historyPoints - 1;
    var pts = [];
    var lastY = 12;
    for (var j = 0; j < n; j++) {
      var x = 100 - (n - 1 - j) * (100 / slots);
      var y = span === 0 ? 12 : 22 - ((history[j] - min) / span) * 20;
      lastY = y;
      pts.push(x.toFixed(2) + ',' + y.toFixed(2));
    }
    m.line.setAttribute('points', pts.join(' '));
    if (n > 1) {
      var firstX = (100 - (n - 1) * (100 / slots)).toFixed(2);
      m.area.setAttribute('d', 'M' + firstX + ',24 L' + pts.join(' L') + ' L100,24 Z');
    } else {
      m.area.setAttribute('d', '');
    }
    m.dot.style.top = (lastY / 24 * 100) + '%';
    m.spark.title = n + ' points · min ' + formatValue(min) + ' · max ' + formatValue(max);
  }

  var reduceMotion = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;

  function renderEntity(id) {
    var e = entities[id];
    if (!e) return;
    var v = views.get(id) || createView(id);
    v.type.textContent = e.type || 'entity';
    v.card.setAttribute('data-type', e.type || '');
    v.trunc.hidden = !e.truncated;
    v.card.classList.toggle('is-truncated', e.truncated);
    v.card.classList.remove('is-stale');

    var names = metricOrder(Object.keys(e.metrics));
    // drop rows of metrics that disappeared
    v.metrics.forEach(function (m, name) {
      if (!(name in e.metrics)) { m.row.remove(); v.metrics.delete(name); }
    });
    names.forEach(function (name, idx) {
      var m = v.metrics.get(name);
      if (!m) { m = createMetricRow(name); v.metrics.set(name, m); }
      if (v.tbody.children[idx] !== m.row) v.tbody.insertBefore(m.row, v.tbody.children[idx] || null);
      if (m.hue !== hueAt(idx)) { m.hue = hueAt(idx); m.spark.style.setProperty('--hue', String(m.hue)); }
      var val = e.metrics[name];
      if (m.last !== val || !e.truncated) {
        m.value.textContent = formatValue(val);
        m.value.setAttribute('data-value', String(val));
        m.value.title = String(val);
        if (m.last !== undefined && m.last !== val) {
          m.value.classList.toggle('up', val > m.last);
          m.value.classList.toggle('down', val < m.last);
          if (!reduceMotion && m.value.animate) {
            m.value.animate([{ backgroundColor: 'rgba(96, 165, 250, 0.35)' }, { backgroundColor: 'rgba(96, 165, 250, 0)' }], { duration: 900, easing: 'ease-out' });
          }
        }
        m.last = val;
        drawSpark(m, e.history[name] || [val]);
      }
    });
    v.noMetrics.hidden = names.length > 0;

    v.tags.textContent = '';
    Object.keys(e.attributes).sort(compareNatural).forEach(function (name) {
      v.tags.appendChild(el('li', { title: name + ': ' + e.attributes[name] }, [
        el('span', { class: 'tag-key', text: name }), el('span', { class: 'tag-val', text: e.attributes[name] })
      ]));
    });
    v.tags.hidden = v.tags.childElementCount === 0;

    v.time.setAttribute('datetime', new Date(e.updatedAt).toISOString());
    v.time.textContent = formatClock(e.updatedAt);
    v.time.title = new Date(e.updatedAt).toISOString();
    v.ago.textContent = formatAgo(e.updatedAt);
    v.seq.textContent = e.sequence ? ' · seq ' + (e.sequence.length > 10 ? '…' + e.sequence.slice(-8) : e.sequence) : '';
    v.seq.title = e.sequence ? 'stream sequence ' + e.sequence : '';
    applyFilterTo(v.card, e);
  }

  function removeView(id) {
    var v = views.get(id);
    if (!v) return;
    v.card.remove();
    views.delete(id);
  }

  /** Puts the cards in order (type, then id) and updates the counters that depend on them. */
  function renderCollection() {
    var container = $('entities');
    var ids = sortedIds();
    for (var i = 0; i < ids.length; i++) {
      var v = views.get(ids[i]);
      if (!v) continue;
      if (container.children[i] !== v.card) container.insertBefore(v.card, container.children[i] || null);
    }
    $('empty').hidden = ids.length > 0;
    updateShown();
  }

  // ---------------------------------------------------------------- filter

  var filterText = '';

  function applyFilterTo(card, e) {
    var hay = (e.id + ' ' + (e.type || '')).toLowerCase();
    card.hidden = filterText !== '' && hay.indexOf(filterText) === -1;
  }

  function updateShown() {
    var total = Object.keys(entities).length;
    if (filterText === '') { $('shown').textContent = total ? total + ' entities' : ''; return; }
    var shown = 0;
    views.forEach(function (v) { if (!v.card.hidden) shown++; });
    $('shown').textContent = shown + ' of ' + total + ' entities match';
  }

  // ---------------------------------------------------------------- stats & status

  function renderStats() {
    $('stat-entities').textContent = fmtInt.format(Object.keys(entities).length);
    $('stat-messages').textContent = fmtInt.format(stats.messages);
    $('stat-applied').textContent = fmtInt.format(stats.updatesApplied);
    $('stat-duplicates').textContent = fmtInt.format(stats.duplicatesDropped);
    $('stat-stale').textContent = fmtInt.format(stats.outOfOrderIgnored);
    $('stat-reconnects').textContent = fmtInt.format(stats.reconnects);
    var last = $('stat-last-id');
    if (stats.lastBroadcastId === null) {
      last.textContent = '–';
    } else {
      last.textContent = stats.lastBroadcastId + (stats.lastParts ? ' (part ' + stats.lastPart + '/' + stats.lastParts + ')' : '');
      last.title = stats.lastBroadcastId;
    }
    // the last round trip is kept in stats.rttMs; shown only while connected
    $('rtt').textContent = stats.rttMs === null || stats.state !== 'open' ? '–' : Math.round(stats.rttMs) + ' ms';
  }

  var STATE_TEXT = {
    connecting: 'Connecting…', open: 'Live', reconnecting: 'Reconnecting', closed: 'Closed',
    refused: 'Refused'
  };

  function setState(state, detail) {
    stats.state = state;
    var s = $('status');
    s.setAttribute('data-state', state);
    s.querySelector('.status-text').textContent = STATE_TEXT[state];
    // the countdown is aria-hidden so screen readers announce state changes, not every tick
    s.querySelector('.status-detail').textContent = detail ? ' ' + detail : '';
    s.title = stats.lastClose ? 'last close: ' + stats.lastClose : '';
    $('toggle').textContent = state === 'closed' ? 'Connect' : 'Disconnect';
    document.title = (state === 'open' ? '● ' : '○ ') + 'IOps metrics · live';
    renderStats();
  }

  // ---------------------------------------------------------------- connection

  var ws = null;
  var attempt = 0; // consecutive failed attempts since the last successful open
  var attemptAtOpen = 0;
  var openedAt = 0;
  var reconnectTimer = null;
  var countdownTimer = null;
  var pingTimer = null;
  var pingSentAt = null;
  var wanted = params.get('autoconnect') !== '0';
  var refused = false; // the last attempt closed before it opened

  /** The socket for the configured URL and token. */
  function openSocket() {
    if (!CONFIG.token) return new WebSocket(CONFIG.wsUrl);
    if (CONFIG.tokenInQuery) {
      var sep = CONFIG.wsUrl.indexOf('?') < 0 ? '?' : '&';
      return new WebSocket(CONFIG.wsUrl + sep + 'token=' + encodeURIComponent(CONFIG.token));
    }
    return new WebSocket(CONFIG.wsUrl, [CONFIG.token]);
  }

  /** A handshake that never opened: browsers do not say why (401, 403 and an unreachable
   *  server all look alike), so say what the likely causes are. */
  function reportRefusal() {
    refused = true;
    stats.refusals = (stats.refusals || 0) + 1;
    showAlert(CONFIG.token
      ? 'The server refused the connection: the token may be invalid or expired (or the server is unreachable).'
      : 'The server refused the connection or is unreachable. If it requires authentication, enter a token.');
    log('connection refused before opening (' + stats.lastClose + ')', 'error');
  }

  /** Exponential backoff with jitter: 1 s doubling to a 30 s cap, delay drawn from [base/2, base]. */
  function backoffDelay(n) {
    var base = Math.min(CONFIG.backoffCapMs, CONFIG.backoffBaseMs * Math.pow(2, Math.min(n, 30)));
    return Math.round(base / 2 + Math.random() * base / 2);
  }

  function connect() {
    clearTimeout(reconnectTimer); reconnectTimer = null;
    clearInterval(countdownTimer); countdownTimer = null;
    wanted = true;
    setState('connecting');
    var sock;
    try {
      sock = openSocket();
    } catch (err) {
      log('cannot open ' + CONFIG.wsUrl + ': ' + err.message, 'error');
      showAlert('Invalid WebSocket URL: ' + CONFIG.wsUrl);
      wanted = false;
      setState('closed');
      return;
    }
    sock.binaryType = 'arraybuffer';
    ws = sock;

    sock.onopen = function () {
      if (ws !== sock) return;
      attemptAtOpen = attempt;
      refused = false;
      attempt = 0; // reset on a successful open (undone below if it drops within stableAfterMs)
      openedAt = Date.now();
      setState('open');
      log('connected to ' + CONFIG.wsUrl, 'ok');
      $('alert').hidden = true;
      sendPing();
      clearInterval(pingTimer);
      pingTimer = setInterval(sendPing, CONFIG.pingIntervalMs);
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      handleRaw(ev.data);
    };
    sock.onerror = function () { /* a close event follows */ };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      clearInterval(pingTimer); pingTimer = null;
      pingSentAt = null;
      stats.lastClose = 'code ' + ev.code + (ev.reason ? ' (' + ev.reason + ')' : '');
      if (!openedAt) reportRefusal();
      if (openedAt && Date.now() - openedAt < CONFIG.stableAfterMs) attempt = attemptAtOpen;
      openedAt = 0;
      if (!wanted) {
        setState('closed');
        log('disconnected (' + stats.lastClose + ')');
        return;
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    var delay = backoffDelay(attempt);
    attempt++;
    var due = Date.now() + delay;
    log('connection closed (' + stats.lastClose + '), retrying in ' + (delay / 1000).toFixed(1) + ' s', 'warn');
    var tick = function () {
      var left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setState(refused ? 'refused' : 'reconnecting', 'retry in ' + left + 's');
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
    reconnectTimer = setTimeout(function () {
      stats.reconnects++;
      renderStats();
      connect();
    }, delay);
  }

  function disconnect() {
    wanted = false;
    clearTimeout(reconnectTimer); reconnectTimer = null;
    clearInterval(countdownTimer); countdownTimer = null;
    clearInterval(pingTimer); pingTimer = null;
    if (ws) {
      var sock = ws;
      ws = null;
      sock.close(1000, 'closed by user');
    }
    stats.lastClose = 'closed by user';
    setState('closed');
    log('disconnected by user');
  }

  function sendPing() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    pingSentAt = performance.now();
    try { ws.send(JSON.stringify({ action: 'ping' })); } catch (e) { pingSentAt = null; }
  }

  function handlePong() {
    stats.lastPongAt = Date.now();
    if (pingSentAt !== null) {
      stats.rttMs = performance.now() - pingSentAt;
      pingSentAt = null;
    }
  }

  // ---------------------------------------------------------------- periodic refresh

  function refreshAges() {
    var now = Date.now();
    views.forEach(function (v, id) {
      var e = entities[id];
      if (!e) return;
      v.ago.textContent = formatAgo(e.updatedAt);
      v.card.classList.toggle('is-stale', now - e.receivedAt > CONFIG.staleAfterMs);
    });
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    $('endpoint').textContent = CONFIG.wsUrl;
    $('toggle').addEventListener('click', function () {
      if (wanted) disconnect(); else { attempt = 0; connect(); }
    });
    $('alert-close').addEventListener('click', function () { $('alert').hidden = true; });
    $('token').value = CONFIG.token;
    $('token-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      CONFIG.token = $('token').value.trim();
      if (CONFIG.token) sessionStorage.setItem('iops-token', CONFIG.token);
      else sessionStorage.removeItem('iops-token');
      log(CONFIG.token ? 'token set; reconnecting' : 'token cleared; reconnecting');
      if (ws) { var sock = ws; ws = null; sock.close(1000, 'new token'); }
      attempt = 0;
      connect();
    });
    $('filter').addEventListener('input', function (ev) {
      filterText = ev.target.value.trim().toLowerCase();
      views.forEach(function (v, id) { if (entities[id]) applyFilterTo(v.card, entities[id]); });
      updateShown();
    });
    setInterval(refreshAges, 1000);
    renderStats();
    if (wanted) connect(); else setState('closed');
  }

  window.dashboard = {
    entities: entities,
    stats: stats,
    config: CONFIG,
    connect: function () { attempt = 0; connect(); },
    disconnect: disconnect,
    /** Feeds a message object (or JSON text) as if it came from the socket. */
    handle: function (msg) { if (typeof msg === 'string') handleRaw(msg); else { stats.messages++; handleMessage(msg); } },
    formatValue: formatValue
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
