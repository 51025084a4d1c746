// Upload form: check the fields, send with a progress bar, put the server's message by its field.
(function () {
  "use strict";
  const form = document.getElementById("submit-form");
  const fields = ["token", "arch", "checkpoint", "sigma", "mean", "std", "normalisation", "description"];
  const maxBytes = Number(form.dataset.maxMb) * 1024 * 1024;
  const token = form.elements.token;
  const box = document.getElementById("upload-box");
  const bar = document.getElementById("upload-progress");
  const text = document.getElementById("upload-text");
  const button = document.getElementById("submit-button");
  token.value = sessionStorage.getItem("arenaToken") || "";
  const choice = document.getElementById("norm-choice");
  const custom = document.getElementById("custom-fields");
  const insist = form.elements.normalisation;

  // A named choice fills mean and std; custom lets the team type them; automatic sends none.
  function showChoice() {
    const option = choice.selectedOptions[0];
    custom.hidden = choice.value !== "custom";
    insist.disabled = choice.value === "auto";
    if (insist.disabled) insist.checked = false;
    if (option && option.dataset.mean) {
      form.elements.mean.value = option.dataset.mean;
      form.elements.std.value = option.dataset.std;
    } else if (choice.value === "auto") {
      form.elements.mean.value = "";
      form.elements.std.value = "";
    }
  }
  choice.addEventListener("change", showChoice);
  showChoice();

  function showError(field, message) {
    const name = fields.includes(field) ? field : "form";
    document.getElementById(name + "-error").textContent = message;
    const input = form.elements[name];
    if (input) {
      input.setAttribute("aria-invalid", "true");
      if (name === "mean" || name === "std") {
        choice.value = "custom";
        custom.hidden = false;
        insist.disabled = false;
      }
    }
    return input;
  }
  function clearErrors() {
    fields.concat(["form"]).forEach((f) => {
      document.getElementById(f + "-error").textContent = "";
      if (form.elements[f]) form.elements[f].removeAttribute("aria-invalid");
    });
  }
  // A message goes as soon as its field is edited: a corrected token no longer reads "invalid".
  fields.forEach((f) => {
    const input = form.elements[f];
    const clear = () => {
      document.getElementById(f + "-error").textContent = "";
      input.removeAttribute("aria-invalid");
    };
    input.addEventListener("input", clear);
    input.addEventListener("change", clear);
  });
  function megabytes(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }

  function problems() {
    const found = [];
    if (!token.value.trim()) found.push(["token", "Enter your team token."]);
    if (!form.elements.arch.value) found.push(["arch", "Choose an architecture, or auto."]);
    const file = form.elements.checkpoint.files[0];
    if (!file) found.push(["checkpoint", "Choose a checkpoint file."]);
    else if (file.size === 0) found.push(["checkpoint", "The file is empty."]);
    else if (file.size > maxBytes) {
      found.push(["checkpoint", `The file is ${megabytes(file.size)}; the limit is ${megabytes(maxBytes)}.`]);
    }
    const sigma = form.elements.sigma.value.trim();
    if (sigma && !(Number.isFinite(Number(sigma)) && Number(sigma) > 0)) {
      found.push(["sigma", "σ must be a positive number, e.g. 0.25."]);
    }
    if (choice.value === "custom" && !form.elements.mean.value.trim() && !form.elements.std.value.trim()) {
      found.push(["mean", "Give the mean and std, or choose automatic."]);
    }
    ["mean", "std"].forEach((name) => {
      const raw = form.elements[name].value.trim();
      if (!raw) return;
      const parts = raw.split(",").map((p) => p.trim());
      if (parts.length !== 3 || parts.some((p) => p === "" || !isFinite(Number(p)))) {
        found.push([name, "Give three comma-separated numbers, e.g. 0.5,0.5,0.5."]);
      } else if (name === "std" && parts.some((p) => Number(p) <= 0)) {
        found.push([name, "Standard deviations must be positive."]);
      }
    });
    return found;
  }

  function finish() {
    button.disabled = false;
    box.hidden = true;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors();
    const found = problems();
    if (found.length) {
      const first = found.map(([field, message]) => showError(field, message))[0];
      if (first) first.focus();
      return;
    }
    const data = new FormData();
    ["arch", "sigma", "mean", "std", "description"].forEach((f) => {
      const value = form.elements[f].value.trim();
      if (value) data.append(f, value);
    });
    if (insist.checked) data.append("normalisation", "as-declared");
    const competition = form.elements.competition;
    if (competition && competition.value) data.append("competition", competition.value);
    const file = form.elements.checkpoint.files[0];
    data.append("checkpoint", file);
    button.disabled = true;
    box.hidden = false;
    bar.value = 0;
    text.textContent = "Starting the upload…";
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/submissions");
    xhr.setRequestHeader("Authorization", "Bearer " + token.value.trim());
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.value = (100 * e.loaded) / e.total;
      text.textContent = `${Math.round(bar.value)}% of ${megabytes(e.total)} sent`;
    };
    xhr.upload.onload = () => {
      bar.value = 100;
      text.textContent = "Uploaded; checking that the model loads…";
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { detail: xhr.statusText }; }
      if (xhr.status === 202) {
        sessionStorage.setItem("arenaToken", token.value.trim());
        sessionStorage.setItem("arenaTeam", body.team || "");
        text.textContent = "Queued; opening its page…";
        window.location.href = "/submissions/" + body.id;
        return;
      }
      finish();
      const field = body.field || (xhr.status === 401 ? "token" : "form");
      const detail = typeof body.detail === "string" ? body.detail : "Upload failed (" + xhr.status + ").";
      const input = showError(field, detail);
      if (input) input.focus();
    };
    xhr.onerror = () => {
      finish();
      showError("form", "Network error: the upload did not reach the server. Try again.");
    };
    xhr.send(data);
  });
})();
