// Submission page: follow the evaluation live (queue position, a progress bar per stage with
// images done and time left) and swap in the server-rendered results when it stops.
(function () {
  "use strict";
  const live = document.getElementById("live");
  const id = live.dataset.submission;
  const token = sessionStorage.getItem("arenaToken");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const TERMINAL = ["finished", "failed", "cancelled"];
  const STATUS = {
    validating: "Checking the model", queued: "Queued", running: "Running",
    finished: "Finished", failed: "Failed", cancelled: "Cancelled",
  };
  const STAGES = JSON.parse(live.dataset.stageLabels);  // the protocol's STAGE_LABELS
  let shownOutcome = live.dataset.status;
  let failures = 0;

  const ENDED = { failed: "Failed", cancelled: "Cancelled" };
  function escape(text) {
    const span = document.createElement("span");
    span.textContent = text;
    return span.innerHTML;
  }

  function renderStages(s) {
    const list = document.getElementById("stages");
    const p = s.progress;
    if (s.status !== "running" || !p) {
      list.hidden = true;
      list.innerHTML = "";
      return;
    }
    const stages = p.stages && p.stages.length ? p.stages : [p.stage];
    const current = stages.indexOf(p.stage);
    list.innerHTML = stages.map((name, index) => {
      const label = escape(STAGES[name] || name);
      const state = index < current ? "done" : index === current ? "active" : "waiting";
      let bar, count;
      if (state === "active" && p.done === 0 && p.total <= 1) {  // before the first report
        bar = `<progress id="stage-${name}"></progress>`;
        count = "starting…";
      } else if (state === "active") {
        bar = `<progress id="stage-${name}" max="${Math.max(p.total, 1)}" value="${p.done}"></progress>`;
        count = `${p.done} / ${p.total} images`;  // the time left is the status line's, once
      } else if (state === "done") {
        bar = `<progress id="stage-${name}" max="1" value="1"></progress>`;
        count = "done";
      } else {
        bar = `<progress id="stage-${name}" max="1" value="0"></progress>`;
        count = "waiting";
      }
      return `<li class="stage" data-stage="${name}" data-state="${state}">` +
        `<label for="stage-${name}">${label}</label>${bar}<span class="count">${count}</span></li>`;
    }).join("");
    list.hidden = false;
  }

  async function refreshOutcome() {
    const response = await fetch(`/submissions/${id}/outcome`, { headers });
    if (response.ok) document.getElementById("outcome").innerHTML = await response.text();
  }

  function render(s) {
    const status = document.getElementById("status");
    status.textContent = STATUS[s.status] || s.status;
    status.className = "status status-" + s.status;
    let note = "";
    if (s.status === "queued" && s.queue_position) note = `position ${s.queue_position} in the queue`;
    else if (s.status === "running" && !s.progress) note = "starting the evaluation…";
    document.getElementById("queue").textContent = note;
    document.getElementById("estimate").textContent = s.estimate ? s.estimate.summary : "";
    document.getElementById("finished-label").textContent = ENDED[s.status] || "Finished";
    if (s.finished_at) {
      document.getElementById("finished-at").textContent =
        s.finished_at.slice(0, 16).replace("T", " ") + " UTC";
    }
    renderStages(s);
    live.dataset.stage = s.status === "running" && s.progress ? s.progress.stage : "";
    live.dataset.status = s.status;
  }

  async function poll() {
    let s;
    try {
      const response = await fetch(`/api/submissions/${id}`, { headers });
      if (!response.ok) throw new Error(String(response.status));
      s = await response.json();
      failures = 0;
    } catch (error) {
      failures += 1;
      setTimeout(poll, Math.min(1000 * 2 ** failures, 15000));
      return;
    }
    render(s);
    const terminal = TERMINAL.includes(s.status);
    // The owner's view of a failure says why; fetch it once even if the page was rendered failed.
    const ownerFailure = s.status === "failed" && token && shownOutcome !== "failed-owner";
    if ((terminal && shownOutcome !== s.status) || ownerFailure) {
      await refreshOutcome();
      shownOutcome = ownerFailure ? "failed-owner" : s.status;
    }
    if (!terminal) setTimeout(poll, 700);
  }
  poll();
})();
