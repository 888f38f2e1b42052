/* Every chart in words, and its trend in sound (ISO/IEC 5153-1 §6.1; WCAG 2.2 1.1.1 "non-text content").
 *
 * Under each Plotly chart this adds a "Text summary" (a <details>, closed, reachable by keyboard): what the
 * chart shows (its panel's heading) and, for each series, its latest value and when; a map says how many
 * places each layer shows. The text is read from the figure as drawn, after every redraw, so it is the
 * chart's own numbers: a withheld value reads as the chart's hover text does ("<5").
 *
 * "Listen" plays a chart's key trend as rising and falling pitch (the Scottish Government's "sonic
 * graphs" idea: higher is more), with the Web Audio API, then speaks the first and latest figures when
 * the machine has a local speech engine (speechSynthesis voices with localService; a voice that would
 * send the text to a server is never used). Nothing here asks any server for anything.
 */
(function () {
  "use strict";
  var counter = 0;
  var MAX_NOTES = 40;       /* a trend of more points is resampled: ~5 s of sound */
  var NOTE_S = 0.12;
  var LOW_HZ = 220, HIGH_HZ = 880;  /* two octaves: A3 .. A5, comfortable on any speaker */

  function headingOf(graph) {
    var panel = graph.closest(".panel, section, figure") || graph.parentElement;
    var h = panel ? panel.querySelector("h1, h2, h3") : null;
    var gd = graph.querySelector(".js-plotly-plot");
    var title = gd && gd.layout && gd.layout.title && (gd.layout.title.text || gd.layout.title);
    var text = (h && h.textContent) || (typeof title === "string" ? title : "") || "Chart";
    return text.replace(/\s+/g, " ").trim();
  }

  function isMap(gd) {
    var y = (gd.layout || {}).yaxis || {};
    return y.scaleanchor === "x" || (gd.data || []).some(function (t) { return /map|geo/.test(t.type || ""); });
  }

  function strip(html) {
    var d = document.createElement("div");
    d.innerHTML = String(html || "");
    return (d.textContent || "").trim();
  }

  function isPercentAxis(gd, trace) {
    var axis = (trace.yaxis || "y").replace("y", "yaxis");
    var layout = (gd.layout || {})[axis] || {};
    return /%/.test(layout.tickformat || "");
  }

  function formatValue(v, percent) {
    if (typeof v !== "number" || !isFinite(v)) { return String(v); }
    if (percent) { return Math.round(v * 100) + " %"; }
    return Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-GB")
      : (Math.round(v * 10) / 10).toLocaleString("en-GB");
  }

  function formatX(x) {
    if (typeof x === "string" && /^\d{4}-\d{2}-\d{2}/.test(x)) {
      var d = new Date(x.length === 10 ? x + "T12:00:00" : x);
      if (!isNaN(d)) {
        return d.toLocaleDateString("en-GB", {day: "numeric", month: "short"})
          + (x.length > 10 && !/T00:00:00/.test(x) ? " " + d.toLocaleTimeString("en-GB", {hour: "2-digit", minute: "2-digit"}) : "");
      }
    }
    return strip(x);
  }

  function series(trace) {
    var xs = trace.x || [], ys = trace.y || [];
    if (trace.orientation === "h") { var t = xs; xs = ys; ys = t; }
    var points = [];
    for (var i = 0; i < Math.min(xs.length, ys.length); i++) {
      if (typeof ys[i] === "number" && isFinite(ys[i])) { points.push({i: i, x: xs[i], y: ys[i]}); }
    }
    return points;
  }

  function summarise(gd, heading) {
    var parts = [];
    var traces = (gd.data || []).filter(function (t) { return t.visible !== false && t.name; });
    if (isMap(gd)) {
      traces.forEach(function (t) {
        var n = (t.customdata && t.customdata.length) || (t.hovertext && t.hovertext.length) || 0;
        if (t.showlegend !== false && n) { parts.push(strip(t.name) + ": " + n + " on the map"); }
        else if (t.showlegend !== false && t.fill === "toself") { parts.push(strip(t.name)); }
      });
      return heading + ". A map. " + (parts.length ? parts.join("; ") + "." : "Nothing drawn on it.");
    }
    traces.forEach(function (t) {
      var points = series(t);
      if (!points.length) { return; }
      if (t.orientation === "h") {
        parts.push(strip(t.name) + ": " + points.length + " bars, the largest " + strip(points[points.length - 1].x)
          + " at " + formatValue(points[points.length - 1].y, /%/.test(((gd.layout || {}).xaxis || {}).tickformat || "")));
        return;
      }
      var last = points[points.length - 1];
      var shown = Array.isArray(t.customdata) && typeof t.customdata[last.i] === "string" ? t.customdata[last.i]
        : formatValue(last.y, isPercentAxis(gd, t));
      parts.push(strip(t.name) + ": latest " + strip(shown) + " on " + formatX(last.x));
    });
    return heading + ". " + (parts.length ? parts.join("; ") + "." : "No data yet.");
  }

  /* The key trend: a series named as an average or a trend, else the first series of 3 points or more. */
  function keyTrend(gd) {
    if (isMap(gd)) { return null; }
    var candidates = (gd.data || []).filter(function (t) {
      return t.visible !== false && t.orientation !== "h" && series(t).length >= 3;
    });
    var avg = candidates.filter(function (t) { return /avg|average|7-day/i.test(t.name || ""); })[0];
    return avg || candidates[0] || null;
  }

  function localVoice() {
    if (!window.speechSynthesis) { return null; }
    var voices = window.speechSynthesis.getVoices() || [];
    return voices.filter(function (v) { return v.localService; })[0] || null;
  }

  function play(gd, heading, button) {
    var trace = keyTrend(gd);
    var AudioContext = window.AudioContext || window.webkitAudioContext;
    if (!trace || !AudioContext) { button.textContent = "Nothing to play"; return; }
    var points = series(trace);
    var step = Math.max(1, Math.ceil(points.length / MAX_NOTES));
    var notes = points.filter(function (_, i) { return i % step === 0 || i === points.length - 1; });
    var ys = notes.map(function (p) { return p.y; });
    var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
    var ctx = new AudioContext();
    var t0 = ctx.currentTime + 0.05;
    notes.forEach(function (p, i) {
      var share = hi > lo ? (p.y - lo) / (hi - lo) : 0.5;
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = LOW_HZ * Math.pow(HIGH_HZ / LOW_HZ, share);  /* equal steps of pitch, not of Hz */
      gain.gain.setValueAtTime(0.0001, t0 + i * NOTE_S);
      gain.gain.exponentialRampToValueAtTime(0.2, t0 + i * NOTE_S + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + (i + 1) * NOTE_S);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0 + i * NOTE_S);
      osc.stop(t0 + (i + 1) * NOTE_S + 0.01);
    });
    button.setAttribute("data-played", String(notes.length));
    var first = notes[0], last = notes[notes.length - 1];
    var direction = last.y > first.y * 1.05 ? "rising" : last.y < first.y * 0.95 ? "falling" : "about level";
    var words = heading + ", " + strip(trace.name) + ": " + formatValue(first.y, isPercentAxis(gd, trace)) + " on "
      + formatX(first.x) + ", " + formatValue(last.y, isPercentAxis(gd, trace)) + " on " + formatX(last.x)
      + ", " + direction + ".";
    var voice = localVoice();
    window.setTimeout(function () {
      ctx.close();
      if (voice) {
        var u = new SpeechSynthesisUtterance(words);
        u.voice = voice;
        window.speechSynthesis.speak(u);
      }
    }, notes.length * NOTE_S * 1000 + 200);
    button.nextSibling.textContent = voice ? "" : " (no local speech engine: " + words + ")";
  }

  function attach(graph) {
    var gd = graph.querySelector(".js-plotly-plot");
    if (!gd || !gd.on || graph.getAttribute("data-summary-for")) { return; }
    var id = "chart-summary-" + (++counter);
    graph.setAttribute("data-summary-for", id);
    var details = document.createElement("details");
    details.className = "chart-summary";
    var summaryEl = document.createElement("summary");
    summaryEl.textContent = "Text summary";
    var text = document.createElement("p");
    text.id = id;
    text.className = "chart-summary-text";
    details.appendChild(summaryEl);
    details.appendChild(text);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "chart-listen";
    button.textContent = "Listen to the trend";
    var note = document.createElement("span");
    note.className = "chart-listen-note";
    details.appendChild(button);
    details.appendChild(note);
    graph.insertAdjacentElement("afterend", details);
    graph.setAttribute("role", "figure");
    graph.setAttribute("aria-describedby", id);
    function update() {
      var heading = headingOf(graph);
      graph.setAttribute("aria-label", heading);
      text.textContent = summarise(gd, heading);
      button.hidden = !keyTrend(gd);
    }
    button.addEventListener("click", function () { play(gd, headingOf(graph), button); });
    gd.on("plotly_afterplot", update);
    update();
  }

  function scan() {
    document.querySelectorAll(".dash-graph").forEach(attach);
  }
  var pending = false;
  function soon() {  /* Plotly mutates the page on every hover: look for new charts at most five times a second */
    if (pending) { return; }
    pending = true;
    window.setTimeout(function () { pending = false; scan(); }, 200);
  }
  new MutationObserver(soon).observe(document.documentElement, {childList: true, subtree: true});
  window.setInterval(scan, 2000);
})();
