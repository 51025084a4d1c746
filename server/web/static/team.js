// Team page: select submissions for the final phase without leaving the page. With the team
// token the upload form keeps (sessionStorage), each form shows its submission's state and
// one button; without it, the token typed in a form is used (and kept, as the upload does).
// Without JavaScript the forms post to the page route, which redirects back.
(function () {
  "use strict";
  const forms = Array.from(document.querySelectorAll("form.final-toggle"));
  if (!forms.length) return;

  function authorization(token) { return { Authorization: "Bearer " + token }; }

  function show(form, selected, message) {
    form.dataset.final = selected ? "true" : "false";
    form.querySelector('button[value="select"]').hidden = selected;
    form.querySelector('button[value="unselect"]').hidden = !selected;
    form.querySelector(".final-state").textContent = message;
  }

  // A stored token of this team: fill it in, hide the fields, and show each selection.
  async function known(token) {
    const response = await fetch("/api/submissions", { headers: authorization(token) });
    if (!response.ok) return;
    const mine = new Map((await response.json()).submissions.map((s) => [String(s.id), s]));
    if (!forms.every((form) => mine.has(form.dataset.submission))) return; // another team's token
    forms.forEach((form) => {
      form.elements.token.value = token;
      form.querySelector(".final-token").hidden = true;
      const selected = mine.get(form.dataset.submission).selected_for_final;
      show(form, selected, selected ? "Selected for the final." : "");
    });
  }

  forms.forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = form.elements.token.value.trim();
      const state = form.querySelector(".final-state");
      if (!token) {
        state.textContent = "Enter your team token.";
        form.elements.token.focus();
        return;
      }
      const wanted = event.submitter ? event.submitter.value : "select";
      const response = await fetch(`/api/submissions/${form.dataset.submission}/final`, {
        method: wanted === "select" ? "POST" : "DELETE",
        headers: authorization(token),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        const problem = response.status === 401 ? "Invalid or revoked team token." : body.detail;
        state.textContent = typeof problem === "string" ? problem : "The change failed; try again.";
        return;
      }
      sessionStorage.setItem("arenaToken", token);
      const count = `${body.selected} of ${body.allowed} selected.`;
      show(form, body.final, (body.final ? "Selected for the final. " : "Not selected. ") + count);
    });
  });

  const stored = sessionStorage.getItem("arenaToken");
  if (stored) known(stored).catch(() => {});
})();
