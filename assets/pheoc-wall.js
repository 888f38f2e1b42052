/* The wall screen in the browser: kiosk mode (?kiosk=1), the kiosk clock, and playlists (?playlist=NAME).
 *
 * Kiosk mode marks <html class="kiosk">: pheoc-wall.css hides the navigation and enlarges the type.
 * A playlist (wall.playlists in config.yaml, handed over as data on #wall-settings by pages/_frame.py)
 * shows each view for its seconds, then moves to the next the way a dcc.Link does (history.pushState
 * and Dash's own navigation event), so the page never reloads and the session never has to sign in
 * again. ?playlist and ?kiosk are carried from view to view. Nothing here asks any server for anything.
 */
(function () {
  "use strict";
  var timer = null;
  var scheduledFor = null;

  function params() { return new URLSearchParams(window.location.search); }
  function wallSettings() { return document.getElementById("wall-settings"); }

  function applyKiosk() {
    document.documentElement.classList.toggle("kiosk", params().get("kiosk") === "1");
  }

  function tickClock() {
    var el = document.getElementById("kiosk-clock");
    var s = wallSettings();
    if (!el || !s) { return; }
    var zone = s.getAttribute("data-timezone") || undefined;
    try {
      el.textContent = new Intl.DateTimeFormat("en-GB", {timeZone: zone, weekday: "short", hour: "2-digit",
        minute: "2-digit", second: "2-digit", hour12: false}).format(new Date());
    } catch (e) {
      el.textContent = new Date().toLocaleTimeString();
    }
  }

  function playlists() {
    var s = wallSettings();
    if (!s) { return null; }
    try { return JSON.parse(s.getAttribute("data-playlists") || "{}"); } catch (e) { return {}; }
  }

  function samePath(a, b) { return a.replace(/\/+$/, "") === b.replace(/\/+$/, ""); }

  /* The view the browser shows now: the one whose path and own query both match, preferring the index
   * the playlist last moved to (a playlist may show one page twice). -1: not in the playlist. */
  function currentIndex(views) {
    var here = params();
    var remembered = parseInt(window.sessionStorage.getItem("pheoc-playlist-index") || "-1", 10);
    var matches = [];
    views.forEach(function (view, i) {
      var url = new URL(view.page, window.location.origin);
      if (!samePath(url.pathname, window.location.pathname)) { return; }
      var all = true;
      url.searchParams.forEach(function (value, key) { if (here.get(key) !== value) { all = false; } });
      if (all) { matches.push(i); }
    });
    if (matches.indexOf(remembered) >= 0) { return remembered; }
    return matches.length ? matches[0] : -1;
  }

  function go(views, index) {
    var here = params();
    var url = new URL(views[index].page, window.location.origin);
    url.searchParams.set("playlist", here.get("playlist"));
    if (here.get("kiosk")) { url.searchParams.set("kiosk", here.get("kiosk")); }
    window.sessionStorage.setItem("pheoc-playlist-index", String(index));
    window.history.pushState({}, "", url.pathname + url.search);
    window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
    window.scrollTo(0, 0);
  }

  function schedulePlaylist() {
    var name = params().get("playlist");
    var all = name ? playlists() : null;
    var views = all && Object.prototype.hasOwnProperty.call(all, name) ? all[name] : null;
    if (!views || !views.length) {
      if (timer) { clearTimeout(timer); timer = null; scheduledFor = null; }
      document.documentElement.removeAttribute("data-playlist-view");
      return;
    }
    var key = window.location.pathname + window.location.search;
    if (key === scheduledFor) { return; }
    scheduledFor = key;
    if (timer) { clearTimeout(timer); }
    var index = currentIndex(views);
    document.documentElement.setAttribute("data-playlist-view", String(index));
    if (index < 0) { go(views, 0); return; }  /* not in the playlist: start it */
    timer = setTimeout(function () { timer = null; go(views, (index + 1) % views.length); },
                       Math.max(1, views[index].seconds) * 1000);
  }

  function step() { applyKiosk(); tickClock(); schedulePlaylist(); }
  /* Dash draws the frame after this script has run, and navigates without reloading: look twice a second. */
  window.setInterval(step, 500);
  window.addEventListener("popstate", step);
  window.addEventListener("_dashprivate_pushstate", function () { window.setTimeout(step, 0); });
  step();
})();
