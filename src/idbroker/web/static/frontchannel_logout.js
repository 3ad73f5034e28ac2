// Front-Channel Logout 1.0 §3: once every application's logout iframe has loaded (or after
// five seconds, whichever comes first) go on to the post_logout_redirect_uri, if there is one.
(function () {
  var box = document.getElementById("frontchannel");
  var next = box && box.getAttribute("data-next");
  if (!next) return;
  var frames = box.getElementsByTagName("iframe");
  var left = frames.length;
  var gone = false;
  function go() { if (!gone) { gone = true; window.location.replace(next); } }
  for (var i = 0; i < frames.length; i++) {
    frames[i].addEventListener("load", function () { left -= 1; if (left <= 0) go(); });
  }
  setTimeout(go, 5000);
})();
