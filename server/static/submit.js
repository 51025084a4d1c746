// Upload form: validate, send with progress, show the server's message by its field.
(function () {
  const form = document.getElementById("submit-form");
  const fields = ["token", "arch", "checkpoint", "sigma", "mean", "std", "description"];
  const token = document.getElementById("token");
  token.value = sessionStorage.getItem("arenaToken") || "";

  function showError(field, message) {
    const el = document.getElementById((fields.includes(field) ? field : "form") + "-error");
    el.textContent = message;
  }
  function clearErrors() {
    fields.concat(["form"]).forEach((f) => (document.getElementById(f + "-error").textContent = ""));
  }
  function validate() {
    let ok = true;
    if (!token.value.trim()) { showError("token", "Enter your team token."); ok = false; }
    if (!form.arch.value) { showError("arch", "Choose an architecture."); ok = false; }
    if (!form.checkpoint.files.length) { showError("checkpoint", "Choose a checkpoint file."); ok = false; }
    const sigma = form.sigma.value.trim();
    if (sigma && !(Number(sigma) > 0)) { showError("sigma", "σ must be a positive number."); ok = false; }
    return ok;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors();
    if (!validate()) return;
    const data = new FormData();
    ["arch", "sigma", "mean", "std", "description"].forEach((f) => {
      if (form[f].value.trim()) data.append(f, form[f].value.trim());
    });
    data.append("checkpoint", form.checkpoint.files[0]);
    const bar = document.getElementById("upload-progress");
    bar.hidden = false;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/submissions");
    xhr.setRequestHeader("Authorization", "Bearer " + token.value.trim());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { detail: xhr.statusText }; }
      if (xhr.status === 202) {
        sessionStorage.setItem("arenaToken", token.value.trim());
        window.location.href = "/submissions/" + body.id;
        return;
      }
      bar.hidden = true;
      const field = body.field || (xhr.status === 401 ? "token" : "form");
      showError(field, body.detail || "Upload failed (" + xhr.status + ").");
    };
    xhr.onerror = () => { bar.hidden = true; showError("form", "Network error: the upload did not reach the server."); };
    xhr.send(data);
  });
})();
