// Live pages: poll the store's change stamp; when it moves, fetch this page again and swap the
// server-rendered <main> in place (the server escaped everything; nothing here builds markup).
// Stops once the fresh page is no longer live (its batch finished).
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main) { return; }
  var interval = Math.max(250, parseFloat(main.getAttribute("data-interval") || "1.5") * 1000);
  var last = null;
  var busy = false;

  function refresh() {
    return fetch(window.location.href, { cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var current = document.querySelector("main");
        if (!fresh || !current) { return false; }
        current.innerHTML = fresh.innerHTML;
        current.setAttribute("data-updated", String(Date.now()));
        if (!fresh.hasAttribute("data-live")) { current.removeAttribute("data-live"); return false; }
        return true;
      });
  }

  function tick() {
    if (busy) { return; }
    busy = true;
    fetch("/api/stamp", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (last === null) { last = data.stamp; return true; }
        if (data.stamp === last) { return true; }
        last = data.stamp;
        return refresh();
      })
      .then(function (again) { busy = false; if (again !== false) { window.setTimeout(tick, interval); } })
      .catch(function () { busy = false; window.setTimeout(tick, interval * 2); });
  }
  window.setTimeout(tick, 0);
})();
