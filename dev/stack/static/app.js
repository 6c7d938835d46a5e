/*
 * IOps live metrics dashboard: the rendering. One card per entity with its latest values, a
 * sparkline per numeric attribute, the connection's state and counters, and an event log.
 *
 * The connection is the dashboards' client library's (client/, @iops-dashboard/client),
 * loaded from ./client.js: the library bundled by `npm run bundle` in client/ (committed, so
 * that the Rust build that serves this page needs no npm). It reconnects with backoff and
 * jitter, pings, sends the token, asks for a subscription and a snapshot on every open (and
 * carries on without them on a server that answers ERROR), drops duplicate parts, keeps the
 * newer value of each entity by `sequence`, and follows `stream` resets. This page only turns
 * its events into DOM.
 *
 * Two controls decide what shows. "Subscribe" (types and/or ids, comma-separated) is the
 * library's filter (`client.setFilter`): the server sends only the entities whose type or id
 * is listed, and the library re-subscribes and takes a snapshot, also after every reconnect;
 * the line below it shows the subscription in force as the server confirmed it (SUBSCRIBED),
 * and an ERROR the server answered a filter with. The search box only hides cards here.
 *
 * Test hooks: [data-entity="<id>"] per entity card, [data-metric="<name>"] per value cell
 * (text = formatted value, data-value = raw number), #status[data-state],
 * #subscription[data-status][data-filter] (the server's echo, JSON), #subscription-error,
 * window.dashboard.
 */
import { MetricsClient } from './client.js';

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
  // The subscription to start with: ?entityTypes=stream,disk&entityIds=stream-001
  filter: filterOf(params.get('entityTypes') || '', params.get('entityIds') || ''),
  historyPoints: 60, // sparkline length
  logCapacity: 100,
  staleAfterMs: 120000 // a card not updated for this long is dimmed
};

/** A filter from the two comma-separated lists of the URL or the subscribe form. */
function filterOf(types, ids) {
  var filter = {};
  var t = splitList(types), i = splitList(ids);
  if (t.length) filter.entityTypes = t;
  if (i.length) filter.entityIds = i;
  return filter;
}

function splitList(text) {
  return text.split(',').map(function (v) { return v.trim(); }).filter(function (v) { return v !== ''; });
}

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

/** What the page draws, per entity id: { id, keyAttribute, type, metrics: {name: number},
 *  history: {name: number[]}, attributes: {name: string}, eventType, sequence, updatedAt,
 *  receivedAt, truncated }. The library holds the entities' latest images; the history of
 *  each metric (the sparklines) is the page's own. */
var entities = Object.create(null);

/** What the page counts itself; the library's counters are read from `client.stats`. */
var pageStats = {
  state: 'connecting',
  reconnects: 0,
  lastBroadcastId: null,
  lastPart: null,
  lastParts: null,
  lastError: null,
  lastClose: null
};

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

/** The attribute that names the entity (as the library picks the id): `entity_id`, else the
 *  first string attribute holding the id. It is the card's title, not a metric or a tag. */
function keyAttributeOf(data, id) {
  if (data.entity_id !== undefined) return 'entity_id';
  var keys = Object.keys(data);
  for (var i = 0; i < keys.length; i++) {
    if (keys[i] !== 'truncated' && data[keys[i]] === id) return keys[i];
  }
  return 'entity_id';
}

// ---------------------------------------------------------------- the library's changes

/** Copies an entity the library upserted into the page's model; true when the cards must be
 *  put in order again (a new entity, or one whose type changed). */
function applyEntity(entity) {
  var id = entity.id;
  var data = entity.data;
  var current = entities[id];
  var reorder = !current;
  if (!current) {
    current = entities[id] = {
      id: id, keyAttribute: keyAttributeOf(data, id), type: null, metrics: {}, history: {},
      attributes: {}, eventType: null, sequence: null, updatedAt: null, receivedAt: null,
      truncated: false
    };
  }
  current.eventType = entity.eventType;
  current.sequence = entity.sequence;
  current.updatedAt = updateTime(entity, data);
  current.receivedAt = Date.now();
  current.truncated = entity.truncated;
  if (typeof data.entity_type === 'string' && data.entity_type !== current.type) {
    current.type = data.entity_type;
    reorder = true;
  }
  // A truncated record carries only the keys (the library hands over the last full image):
  // keep the values and their history as they are.
  if (entity.truncated) return reorder;

  // The image is the whole item: numeric attributes are metrics, strings are shown as tags.
  var key = current.keyAttribute;
  var present = {};
  Object.keys(data).forEach(function (name) {
    var v = data[name];
    if (name === key || name === 'truncated') return;
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
    if (name === key || name === 'entity_type' || name === 'timestamp') return;
    if (typeof v === 'string' || typeof v === 'boolean') attrs[name] = String(v);
  });
  current.attributes = attrs;
  return reorder;
}

// Changes of one message, drawn together when its `batch` event arrives.
var dirty = new Set();
var reorderPending = false;

function onUpsert(ev) {
  if (applyEntity(ev.entity)) reorderPending = true;
  dirty.add(ev.entity.id);
}

function onRemove(ev) {
  var id = ev.entity.id;
  delete entities[id];
  dirty.delete(id);
  removeView(id);
  reorderPending = true;
}

function onBatch(ev) {
  if (ev.ref && ev.source !== 'filter') {
    pageStats.lastBroadcastId = ev.ref.id;
    pageStats.lastPart = ev.ref.part;
    pageStats.lastParts = ev.ref.parts;
  }
  if (ev.snapshotComplete) log('snapshot received (' + Object.keys(entities).length + ' entities)');
  dirty.forEach(renderEntity);
  dirty.clear();
  if (reorderPending) renderCollection();
  reorderPending = false;
  renderStats();
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
  applySearchTo(v.card, e);
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

// ---------------------------------------------------------------- local search

/** The search box: hides cards on this page only (what the server sends is the subscription). */
var searchText = '';

function applySearchTo(card, e) {
  var hay = (e.id + ' ' + (e.type || '')).toLowerCase();
  card.hidden = searchText !== '' && hay.indexOf(searchText) === -1;
}

function updateShown() {
  var total = Object.keys(entities).length;
  if (searchText === '') { $('shown').textContent = total ? total + ' entities' : ''; return; }
  var shown = 0;
  views.forEach(function (v) { if (!v.card.hidden) shown++; });
  $('shown').textContent = shown + ' of ' + total + ' entities match';
}

// ---------------------------------------------------------------- subscription

/** "types stream, disk or ids stream-001" as DOM nodes; "every entity" for no lists. */
function describeFilter(filter) {
  var parts = [];
  var types = filter.entityTypes || [], ids = filter.entityIds || [];
  if (types.length) parts.push(document.createTextNode(types.length > 1 ? 'types ' : 'type '), el('code', { text: types.join(', ') }));
  if (types.length && ids.length) parts.push(document.createTextNode(' or '));
  if (ids.length) parts.push(document.createTextNode(ids.length > 1 ? 'ids ' : 'id '), el('code', { text: ids.join(', ') }));
  if (!parts.length) parts.push(document.createTextNode('every entity'));
  return parts;
}

/** The line under the form: the library's `subscription` (what is asked, what the server confirmed). */
function renderSubscription() {
  var sub = client.subscription;
  var line = $('subscription');
  line.setAttribute('data-status', sub.status);
  line.setAttribute('data-filter', JSON.stringify(sub.confirmed));
  var nodes;
  switch (sub.status) {
    case 'confirmed':
      nodes = [document.createTextNode('Receiving ')].concat(describeFilter(sub.confirmed), [document.createTextNode(' (confirmed by the server)')]);
      break;
    case 'pending':
      nodes = [document.createTextNode('Subscribing to ')].concat(describeFilter(sub.filter), [document.createTextNode('…')]);
      break;
    case 'unsupported':
      nodes = [document.createTextNode('This server has no subscriptions and sends every entity; showing ')].concat(describeFilter(sub.filter));
      break;
    default:
      nodes = [document.createTextNode('Will subscribe to ')].concat(describeFilter(sub.filter), [document.createTextNode(' when connected')]);
  }
  line.textContent = '';
  nodes.forEach(function (n) { line.appendChild(n); });
  // The address keeps the filter asked for (after a refusal: the one the library went back to).
  var url = new URL(location.href);
  setListParam(url, 'entityTypes', sub.filter.entityTypes);
  setListParam(url, 'entityIds', sub.filter.entityIds);
  if (url.href !== location.href) history.replaceState(null, '', url.href);
}

function setListParam(url, name, list) {
  if (list && list.length) url.searchParams.set(name, list.join(','));
  else url.searchParams.delete(name);
}

function onSubscription(sub) {
  if (sub.status === 'confirmed') {
    log('subscribed: ' + describeFilter(sub.confirmed).map(function (n) { return n.textContent; }).join(''), 'ok');
  }
  renderSubscription();
}

function showSubscriptionError(text) {
  var box = $('subscription-error');
  box.textContent = text;
  box.hidden = text === '';
}

/** The form's lists become the library's filter: it subscribes and takes a snapshot. */
function applySubscription(types, ids) {
  showSubscriptionError('');
  client.setFilter(filterOf(types, ids));
}

// ---------------------------------------------------------------- stats & status

/** The page's counters and the library's, as window.dashboard.stats shows them. */
function allStats() {
  var s = client.stats;
  return Object.assign({}, s, pageStats, {
    url: CONFIG.wsUrl,
    outOfOrderIgnored: s.staleIgnored,
    stream: client.stream,
    rttMs: client.rttMs,
    capabilities: client.capabilities
  });
}

function renderStats() {
  var s = client.stats;
  $('stat-entities').textContent = fmtInt.format(Object.keys(entities).length);
  $('stat-messages').textContent = fmtInt.format(s.messages);
  $('stat-applied').textContent = fmtInt.format(s.updatesApplied);
  $('stat-duplicates').textContent = fmtInt.format(s.duplicatesDropped);
  $('stat-stale').textContent = fmtInt.format(s.staleIgnored);
  $('stat-reconnects').textContent = fmtInt.format(pageStats.reconnects);
  var last = $('stat-last-id');
  if (pageStats.lastBroadcastId === null) {
    last.textContent = '–';
  } else {
    last.textContent = pageStats.lastBroadcastId + (pageStats.lastParts ? ' (part ' + pageStats.lastPart + '/' + pageStats.lastParts + ')' : '');
    last.title = pageStats.lastBroadcastId;
  }
  // the last round trip is kept by the library; shown only while connected
  var rtt = client.rttMs;
  $('rtt').textContent = rtt === null || client.state !== 'open' ? '–' : Math.round(rtt) + ' ms';
}

var STATE_TEXT = {
  connecting: 'Connecting…', open: 'Live', reconnecting: 'Reconnecting', closed: 'Closed',
  refused: 'Refused'
};

function setState(state, detail) {
  pageStats.state = state;
  var s = $('status');
  s.setAttribute('data-state', state);
  s.querySelector('.status-text').textContent = STATE_TEXT[state];
  // the countdown is aria-hidden so screen readers announce state changes, not every tick
  s.querySelector('.status-detail').textContent = detail ? ' ' + detail : '';
  s.title = pageStats.lastClose ? 'last close: ' + pageStats.lastClose : '';
  $('toggle').textContent = state === 'closed' ? 'Connect' : 'Disconnect';
  document.title = (state === 'open' ? '● ' : '○ ') + 'IOps metrics · live';
  renderStats();
}

// ---------------------------------------------------------------- connection (the library)

var client = new MetricsClient({
  url: CONFIG.wsUrl,
  // Called before every attempt, so a token entered later is used by the next reconnect.
  token: function () { return CONFIG.token || null; },
  tokenIn: CONFIG.tokenInQuery ? 'query' : 'protocol',
  pingIntervalMs: CONFIG.pingIntervalMs,
  filter: CONFIG.filter
});

var countdownTimer = null;
/** Set while the page itself closes the connection (a new token): no "disconnected" line. */
var quietClose = false;

function describeClose(close) {
  return 'code ' + close.code + (close.reason ? ' (' + close.reason + ')' : '');
}

function onState(ev) {
  clearInterval(countdownTimer);
  countdownTimer = null;
  if (ev.close) pageStats.lastClose = describeClose(ev.close);
  if (ev.state === 'connecting' && (ev.previous === 'reconnecting' || ev.previous === 'refused')) pageStats.reconnects++;
  if (ev.state === 'open') {
    log('connected to ' + CONFIG.wsUrl, 'ok');
    $('alert').hidden = true;
  } else if (ev.retryInMs !== null) {
    var due = Date.now() + ev.retryInMs;
    if (ev.state === 'reconnecting') {
      log('connection closed (' + (pageStats.lastClose || 'no close frame') + '), retrying in ' + (ev.retryInMs / 1000).toFixed(1) + ' s', 'warn');
    }
    var tick = function () {
      var left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setState(ev.state, 'retry in ' + left + 's');
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
    return;
  } else if (ev.state === 'closed' && !quietClose) {
    log('disconnected (' + (pageStats.lastClose || 'by the page') + ')');
  }
  setState(ev.state);
}

/** What went wrong. A handshake that never opened: browsers do not say why (401, 403 and an
 *  unreachable server all look alike), so say what the likely causes are. */
function onError(ev) {
  switch (ev.kind) {
    case 'refused':
      showAlert(CONFIG.token
        ? 'The server refused the connection: the token may be invalid or expired (or the server is unreachable).'
        : 'The server refused the connection or is unreachable. If it requires authentication, enter a token.');
      log('connection refused before opening (' + pageStats.lastClose + ')', 'error');
      return;
    case 'server':
      // The server refused a filter (invalid, or types the token does not allow): its
      // subscription is unchanged, and the library went back to it.
      if (ev.refusedFilter) {
        if (ev.action === 'subscribe') showSubscriptionError('The server refused the filter: ' + ev.message);
        log('filter refused (' + ev.action + '): ' + ev.message, 'error');
        return;
      }
      // A server without subscriptions or snapshots (issue 14 not deployed, or the seed)
      // answers them with ERROR: the library then receives everything and filters locally.
      if ((ev.action === 'subscribe' || ev.action === 'snapshot') && client.capabilities[ev.action] === 'unsupported') {
        log('the server does not support "' + ev.action + '" (' + ev.message + '); carrying on without it');
        return;
      }
      pageStats.lastError = ev.message;
      log('server ERROR: ' + ev.message, 'error');
      showAlert('Server error: ' + ev.message);
      return;
    case 'config':
      log('cannot open ' + CONFIG.wsUrl + ': ' + (ev.error && ev.error.message), 'error');
      // a URL the browser rejects, or a token that is no valid subprotocol (spaces, commas)
      showAlert('Cannot open a WebSocket to ' + CONFIG.wsUrl + ': ' + (ev.error && ev.error.message));
      return;
    case 'token':
      log('no token: ' + String(ev.error), 'error');
      return;
    case 'protocol':
      log('unparsable message (' + ev.message + ')', 'warn');
      renderStats();
      return;
  }
}

client.on('state', onState);
client.on('error', onError);
client.on('upsert', onUpsert);
client.on('remove', onRemove);
client.on('batch', onBatch);
client.on('rtt', renderStats);
client.on('subscription', onSubscription);
client.on('stream', function (ev) {
  log('new stream ' + ev.to + ' (was ' + ev.from + '): duplicate and order tracking reset', 'warn');
});

function connect() {
  client.connect();
}

function disconnect() {
  pageStats.lastClose = 'closed by user';
  quietClose = true;
  client.close();
  quietClose = false;
  log('disconnected by user');
}

/** Closes the connection and opens a new one at once (a new token). */
function reconnectNow() {
  quietClose = true;
  client.close();
  quietClose = false;
  client.connect();
}

// ---------------------------------------------------------------- periodic refresh

/** Every second: ages, stale cards, and the counters (a message that changes no entity, a
 *  duplicate or a stale update, raises them without a `batch` event). */
function refreshAges() {
  renderStats();
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
    if (client.state === 'closed' || client.state === 'idle') connect(); else disconnect();
  });
  $('alert-close').addEventListener('click', function () { $('alert').hidden = true; });
  $('token').value = CONFIG.token;
  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    CONFIG.token = $('token').value.trim();
    if (CONFIG.token) sessionStorage.setItem('iops-token', CONFIG.token);
    else sessionStorage.removeItem('iops-token');
    log(CONFIG.token ? 'token set; reconnecting' : 'token cleared; reconnecting');
    reconnectNow();
  });
  $('sub-types').value = (CONFIG.filter.entityTypes || []).join(', ');
  $('sub-ids').value = (CONFIG.filter.entityIds || []).join(', ');
  $('subscribe-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    applySubscription($('sub-types').value, $('sub-ids').value);
  });
  $('sub-all').addEventListener('click', function () {
    $('sub-types').value = '';
    $('sub-ids').value = '';
    applySubscription('', '');
  });
  $('filter').addEventListener('input', function (ev) {
    searchText = ev.target.value.trim().toLowerCase();
    views.forEach(function (v, id) { if (entities[id]) applySearchTo(v.card, entities[id]); });
    updateShown();
  });
  setInterval(refreshAges, 1000);
  renderStats();
  renderSubscription();
  if (params.get('autoconnect') !== '0') connect(); else setState('closed');
}

window.dashboard = {
  entities: entities,
  get stats() { return allStats(); },
  get subscription() { return client.subscription; },
  config: CONFIG,
  client: client,
  connect: connect,
  disconnect: disconnect,
  formatValue: formatValue
};

// A module runs after the document is parsed.
init();
