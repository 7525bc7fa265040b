// The import page's progress: poll the job's status until it is finished. Nothing else in
// the console needs script.
"use strict";
(function () {
  const box = document.getElementById("import");
  if (!box) return;
  const bar = document.getElementById("bar");
  const figures = document.getElementById("figures");
  const errors = document.getElementById("errors");
  async function poll() {
    const answer = await fetch(box.dataset.status, { credentials: "same-origin" });
    if (!answer.ok) return;
    const job = await answer.json();
    bar.max = job.total;
    bar.value = job.done;
    figures.textContent = job.summary;
    errors.replaceChildren(...job.errors.map((e) => {
      const li = document.createElement("li");
      li.textContent = "line " + e.line + ": " + e.message;
      return li;
    }));
    if (!job.finished) setTimeout(poll, 500);
  }
  poll();
})();
