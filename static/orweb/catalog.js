// The models page: "/" jumps to the search box from anywhere on the page that isn't a text field.
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest("input, textarea, select, [contenteditable='true']")) return;
  const search = document.getElementById("catalog-q");
  if (!search) return;
  event.preventDefault();
  search.focus();
  search.select();
});
