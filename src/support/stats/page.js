// Keeps /stats.html live: fetches /stats.json every second and updates, in place, every
// element whose data-k names a path in it. Formats match the server's (stats/mod.rs).
(function () {
  'use strict';
  var PERIOD_MS = 1000;

  function rate(v) { return v >= 100 ? v.toFixed(0) : v.toFixed(1); }
  function micros(us) {
    if (us < 1000) { return us + ' µs'; }
    if (us < 1000000) { return (us / 1e3).toFixed(1) + ' ms'; }
    return (us / 1e6).toFixed(2) + ' s';
  }
  function bytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var value = n;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? Math.floor(n) + ' B' : value.toFixed(1) + ' ' + units[unit];
  }
  function duration(seconds) {
    var s = Math.floor(seconds);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    s = s % 60;
    if (d > 0) { return d + 'd ' + h + 'h'; }
    if (h > 0) { return h + 'h ' + m + 'm'; }
    if (m > 0) { return m + 'm ' + s + 's'; }
    return s + 's';
  }
  function percent(ratio) { return (ratio * 100).toFixed(1) + '%'; }
  var formats = { int: String, text: String, rate: rate, us: micros, bytes: bytes, duration: duration, percent: percent };

  function lookup(data, path) {
    return path.split('.').reduce(function (node, key) {
      return node === null || node === undefined ? undefined : node[key];
    }, data);
  }

  var SLOT = { R: 'run', W: 'wait', _: 'idle' };

  function updateBoards(data) {
    document.querySelectorAll('[data-board]').forEach(function (group) {
      var farm = data.farms[group.getAttribute('data-board')];
      if (!farm) { return; }
      var slots = group.querySelectorAll('rect');
      for (var i = 0; i < slots.length; i += 1) {
        slots[i].setAttribute('class', 'slot ' + (SLOT[farm.scoreboard.charAt(i)] || 'free'));
      }
    });
  }

  function updateQueues(data) {
    document.querySelectorAll('[data-q]').forEach(function (pill) {
      var n = lookup(data, pill.getAttribute('data-q'));
      pill.setAttribute('class', n > 0 ? 'queue busy' : 'queue');
    });
  }

  function updateBars(data) {
    document.querySelectorAll('[data-bars]').forEach(function (chart) {
      var buckets = lookup(data, chart.getAttribute('data-bars'));
      if (!buckets) { return; }
      var most = Math.max(1, Math.max.apply(null, buckets));
      var tall = 24;
      var bars = chart.querySelectorAll('rect');
      for (var i = 0; i < bars.length && i < buckets.length; i += 1) {
        var n = buckets[i];
        var height = n === 0 ? 0 : Math.max(1, tall * Math.sqrt(n / most));
        bars[i].setAttribute('y', (tall - height).toFixed(1));
        bars[i].setAttribute('height', height.toFixed(1));
        var title = bars[i].querySelector('title');
        if (title) { title.textContent = title.textContent.replace(/: \d+$/, ': ' + n); }
      }
    });
  }

  // Rebuilds the body of table #id from rows, one cell per value cells(row) gives, and
  // shows #id-empty instead when there are none.
  function fillTable(id, rows, cells) {
    var table = document.getElementById(id);
    var empty = document.getElementById(id + '-empty');
    if (!table || !empty) { return; }
    table.hidden = rows.length === 0;
    empty.hidden = rows.length !== 0;
    var body = table.tBodies[0];
    while (body.rows.length > 0) { body.deleteRow(0); }
    rows.forEach(function (item) {
      var row = body.insertRow();
      cells(item).forEach(function (value) { row.insertCell().textContent = String(value); });
    });
  }

  function updateTables(data) {
    fillTable('plugins', data.plugins || [], function (p) {
      return [p.name, p.version, p.state, p.persist ? 'yes' : 'no', p.requests, p.faults, p.timeouts,
        p.generation, p.file, p.note];
    });
    if (data.cache && data.cache.rows) {
      fillTable('cache', data.cache.rows, function (c) { return [c.path, c.bytes, c.score, c.state]; });
    }
  }

  // The request-rate line, as html.rs draws it: newest at the right, scaled to the peak.
  var HISTORY_SECONDS = 120, HISTORY_WIDTH = 240, HISTORY_HEIGHT = 36;
  function updateHistory(values) {
    var line = document.querySelector('#history polyline');
    var peakLabel = document.getElementById('history-peak');
    if (!line || !values) { return; }
    var peak = values.reduce(function (a, b) { return Math.max(a, b); }, 0);
    var step = HISTORY_WIDTH / (HISTORY_SECONDS - 1);
    var offset = Math.max(0, HISTORY_SECONDS - values.length);
    var points = values.map(function (v, i) {
      var y = HISTORY_HEIGHT - 2 - (HISTORY_HEIGHT - 4) * (peak > 0 ? v / peak : 0);
      return ((offset + i) * step).toFixed(1) + ',' + y.toFixed(1);
    });
    line.setAttribute('points', points.join(' '));
    if (peakLabel) { peakLabel.textContent = rate(peak); }
  }

  function update(data) {
    document.querySelectorAll('[data-k]').forEach(function (el) {
      var value = lookup(data, el.getAttribute('data-k'));
      if (value === undefined || value === null) { return; }
      var format = formats[el.getAttribute('data-f')] || String;
      el.textContent = format(value);
    });
    updateBoards(data);
    updateQueues(data);
    updateBars(data);
    updateTables(data);
    updateHistory(data.requests.per_second_history);
  }

  var badge = document.getElementById('live');
  function mark(live) {
    if (badge) {
      badge.textContent = live ? 'live' : 'not updating';
      badge.className = live ? 'live' : 'live stale';
    }
  }

  // The number of updates so far, on <html data-updates>, for anyone watching the page.
  var updates = 0;
  function count() {
    updates += 1;
    document.documentElement.setAttribute('data-updates', String(updates));
  }

  function refresh() {
    fetch('/stats.json', { cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) { throw new Error('status ' + response.status); }
        return response.json();
      })
      .then(function (data) { update(data); mark(true); count(); })
      .catch(function () { mark(false); })
      .then(function () { window.setTimeout(refresh, PERIOD_MS); });
  }
  window.setTimeout(refresh, PERIOD_MS);
}());
