// Competition pages: each UTC time also in the reader's own time zone, and the time left to
// the next deadline counted down every second. Without this script the page shows the same
// times in UTC and the time left as of its rendering.
(function () {
  "use strict";
  const UNITS = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  function timeLeft(seconds) {
    const parts = [];
    let rest = Math.max(0, Math.floor(seconds));
    for (const [name, size] of UNITS) {
      const count = Math.floor(rest / size);
      rest -= count * size;
      if (count > 0 || parts.length > 0) parts.push(count + " " + name + (count === 1 ? "" : "s"));
    }
    return parts.join(" ") || "less than a second"; // every unit once started: it ticks
  }

  const localFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short",
  });

  for (const time of document.querySelectorAll("time[data-local]")) {
    const moment = new Date(time.getAttribute("datetime"));
    if (Number.isNaN(moment.getTime())) continue;
    const local = document.createElement("span");
    local.className = "local-time";
    local.textContent = " (your time: " + localFormat.format(moment) + ")";
    time.after(local);
  }
  const zone = document.getElementById("local-zone");
  if (zone) {
    const name = Intl.DateTimeFormat().resolvedOptions().timeZone;
    zone.textContent = " In brackets, the same times in your time zone" + (name ? " (" + name + ")" : "") + ".";
  }

  const counters = Array.from(document.querySelectorAll("time[data-countdown]"));
  function tick() {
    const now = Date.now();
    for (const counter of counters) {
      const left = (new Date(counter.getAttribute("datetime")).getTime() - now) / 1000;
      counter.textContent = left > 0 ? timeLeft(left) : "0 seconds (reload the page)";
    }
  }
  if (counters.length > 0) {
    tick();
    setInterval(tick, 1000);
  }
})();
