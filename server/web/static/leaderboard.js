// Leaderboard: sort by any column with the header buttons (mouse or keyboard). The suite,
// track and radius choices are a plain form, applied with its button.
(function () {
  "use strict";
  const table = document.getElementById("leaderboard");
  const status = document.getElementById("sort-status");
  const body = table.tBodies[0];
  const heads = Array.from(table.tHead.rows[0].cells);

  function cellValue(row, index, type) {
    const raw = row.cells[index] ? row.cells[index].dataset.sort : undefined;
    if (raw === undefined || raw === "") return null;
    return type === "number" ? Number(raw) : raw;
  }

  function sortBy(index, direction) {
    const type = heads[index].dataset.type;
    const rows = Array.from(body.rows).filter((row) => row.cells.length > 1);
    const sign = direction === "ascending" ? 1 : -1;
    rows.sort((a, b) => {
      const x = cellValue(a, index, type), y = cellValue(b, index, type);
      if (x === null || y === null) {
        if (x === y) return cellValue(a, 0, "number") - cellValue(b, 0, "number");
        return x === null ? 1 : -1;  // missing figures last, whichever the direction
      }
      const order = type === "number" ? x - y : String(x).localeCompare(String(y));
      return order !== 0 ? sign * order : cellValue(a, 0, "number") - cellValue(b, 0, "number");
    });
    rows.forEach((row) => body.appendChild(row));
    heads.forEach((th, i) => th.setAttribute("aria-sort", i === index ? direction : "none"));
    const label = heads[index].querySelector("button").textContent;
    status.textContent = `Sorted by ${label}, ${direction}.`;
  }

  heads.forEach((th, index) => {
    th.querySelector("button").addEventListener("click", () => {
      const now = th.getAttribute("aria-sort");
      // Figures sort best first; rank, team and dates in reading order.
      const first = th.dataset.type === "number" && th.dataset.key !== "rank" ? "descending" : "ascending";
      const next = now === "none" ? first : now === "ascending" ? "descending" : "ascending";
      sortBy(index, next);
    });
  });
})();
