// Shows the upload's progress for the htmx form on the dataset upload page.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("upload-form");
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  if (!form) return;
  form.addEventListener("htmx:xhr:progress", function (event) {
    if (!event.detail.lengthComputable) return;
    var percent = Math.round((event.detail.loaded / event.detail.total) * 100);
    bar.hidden = false;
    bar.value = percent;
    status.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Checking every line…";
  });
  form.addEventListener("htmx:afterRequest", function () {
    bar.hidden = true;
    status.textContent = "";
  });
});
