'use strict';
// Pages, sorts and filters the report's tables. The rows come from the JSON block next to each
// table (inert data, never executed); cells are written with textContent, never as HTML.
(function () {
  var rank = { critical: 5, high: 4, medium: 3, low: 2, info: 1 };
  document.querySelectorAll('div.paged').forEach(function (box) {
    var src = document.getElementById(box.dataset.src);
    if (!src) return;
    var rows = JSON.parse(src.textContent);
    var table = box.querySelector('table');
    var tbody = table.tBodies[0];
    var sev = box.dataset.sev === undefined ? -1 : Number(box.dataset.sev);
    var ctl = box.querySelector('.controls');
    var q = ctl.querySelector('input');
    var info = ctl.querySelector('.info');
    var prev = ctl.querySelector('.prev');
    var next = ctl.querySelector('.next');
    var size = 100, page = 0, key = -1, dir = 1, view = rows;
    var heads = table.tHead.rows[0].cells;
    ctl.hidden = false;
    var more = box.querySelector('.more');
    if (more) more.hidden = true;
    function value(r) {
      var v = r[key];
      if (key === sev) return rank[v] || 0;
      return v;
    }
    function cmp(a, b) {
      var x = value(a), y = value(b);
      var nx = Number(x), ny = Number(y);
      if (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) return (nx - ny) * dir;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    }
    function apply() {
      var t = q.value.trim().toLowerCase();
      view = t ? rows.filter(function (r) { return r.join('\u0001').toLowerCase().indexOf(t) >= 0; }) : rows.slice();
      if (key >= 0) view.sort(cmp);
      page = 0;
      draw();
    }
    function draw() {
      var pages = Math.max(1, Math.ceil(view.length / size));
      if (page >= pages) page = pages - 1;
      if (page < 0) page = 0;
      var frag = document.createDocumentFragment();
      view.slice(page * size, (page + 1) * size).forEach(function (r) {
        var tr = document.createElement('tr');
        r.forEach(function (c, i) {
          var td = document.createElement('td');
          td.textContent = c;
          if (i === sev && c) td.className = 'sev sev-' + c;
          tr.appendChild(td);
        });
        frag.appendChild(tr);
      });
      tbody.replaceChildren(frag);
      info.textContent = view.length
        ? (page * size + 1) + '–' + Math.min(view.length, (page + 1) * size) + ' of ' + view.length +
          (view.length !== rows.length ? ' (filtered from ' + rows.length + ')' : '')
        : 'no rows match';
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    }
    Array.prototype.forEach.call(heads, function (th, i) {
      th.tabIndex = 0;
      th.classList.add('sortable');
      function sort() {
        if (key === i) dir = -dir; else { key = i; dir = 1; }
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
        apply();
      }
      th.addEventListener('click', sort);
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); } });
    });
    q.addEventListener('input', apply);
    prev.addEventListener('click', function () { page--; draw(); });
    next.addEventListener('click', function () { page++; draw(); });
    draw();
  });
})();
