// Submission page: poll the API and redraw status, progress and results without reloading.
(function () {
  const id = window.SUBMISSION_ID;
  const token = sessionStorage.getItem("arenaToken");
  const pct = (x) => (100 * x).toFixed(1) + "%";

  function renderProgress(s) {
    const box = document.getElementById("progress");
    if (s.status !== "running" || !s.progress) { box.innerHTML = ""; return; }
    const p = s.progress;
    const stages = p.stages && p.stages.length ? p.stages : [p.stage];
    box.innerHTML = stages.map((name) => {
      const index = stages.indexOf(name), current = stages.indexOf(p.stage);
      const value = index < current ? 1 : index === current ? p.done / Math.max(p.total, 1) : 0;
      return `<div class="stage"><label>${name}</label><progress data-stage="${name}" max="1" value="${value}"></progress>` +
        (index === current ? ` ${p.done} / ${p.total}` + (p.eta_seconds != null ? `, about ${Math.ceil(p.eta_seconds)} s left` : "") : "") + `</div>`;
    }).join("");
  }
  function renderResults(s) {
    if (!s.results) return;
    const rows = ["natural", "fgsm", "pgd_linf", "pgd_l2", "smoothing"].filter((k) => s.results[k]).map((k) => {
      const m = s.results[k];
      return `<tr><th scope="row">${k}</th><td>${pct(m.accuracy)}</td><td>${pct(m.ci95[0])} – ${pct(m.ci95[1])}</td><td>${m.n}</td></tr>`;
    });
    document.getElementById("results").innerHTML =
      `<table id="results-table"><thead><tr><th scope="col">Metric</th><th scope="col">Accuracy</th><th scope="col">95% interval</th><th scope="col">Images</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
  }
  async function poll() {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const response = await fetch("/api/submissions/" + id, { headers });
    if (!response.ok) { setTimeout(poll, 2000); return; }
    const s = await response.json();
    document.getElementById("status").textContent = s.status;
    document.getElementById("queue").textContent = s.queue_position ? `(position ${s.queue_position} in the queue)` : "";
    document.getElementById("error").textContent = s.error || "";
    renderProgress(s);
    renderResults(s);
    if (!["finished", "failed", "cancelled"].includes(s.status)) setTimeout(poll, 1000);
  }
  poll();
})();
