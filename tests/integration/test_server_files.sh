#!/usr/bin/env bash
# `kiln serve` end to end, part 2: files and safety. /view (types, subfolders, previews,
# channels, traversal and link escapes), uploads (dedup, renaming, overwrite, subfolders,
# masks), static files, the origin check and CORS, and bad requests (malformed JSON,
# wrong content types, oversized and truncated bodies, unknown routes), each answered
# clearly while the server keeps serving. Usage: test_server_files.sh PATH/TO/kiln
set -u
KILN=${1:?usage: test_server_files.sh PATH/TO/kiln}
. "$(dirname "$0")/server_lib.sh"
node_setup
mkdir -p "$WORK/web/assets"
printf '<!doctype html><title>t</title>' >"$WORK/web/index.html"
printf 'console.log(1);\n' >"$WORK/web/assets/app.js"
printf 'body{}' >"$WORK/web/assets/app.css"
start_server "$WORK/base" --max-upload-size 1 --front-end-root "$WORK/web" || exit 1
WF="$SRC/workflows"

alive() { expect 200 GET /prompt; }

# A 4x3 RGBA PNG with translucent pixels, written by node's zlib.
make_png() { # make_png FILE ALPHA
    node -e '
        const zlib = require("zlib"), fs = require("fs");
        const [file, alpha] = [process.argv[1], +process.argv[2]];
        const crcTable = Array.from({length: 256}, (_, n) => { let c = n;
            for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
        const crc = (b) => { let c = 0xffffffff; for (const x of b) c = crcTable[(c ^ x) & 255] ^ (c >>> 8);
            return (c ^ 0xffffffff) >>> 0; };
        const chunk = (type, data) => { const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
            const td = Buffer.concat([Buffer.from(type), data]); const c = Buffer.alloc(4);
            c.writeUInt32BE(crc(td)); return Buffer.concat([len, td, c]); };
        const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(4, 0); ihdr.writeUInt32BE(3, 4);
        ihdr[8] = 8; ihdr[9] = 6;
        const rows = []; for (let y = 0; y < 3; y++) { rows.push(0);
            for (let x = 0; x < 4; x++) rows.push(200, 100, 50 + x, alpha); }
        fs.writeFileSync(file, Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
            chunk("IHDR", ihdr), chunk("tEXt", Buffer.from("prompt\0{\"k\": 1}")),
            chunk("IDAT", zlib.deflateSync(Buffer.from(rows))), chunk("IEND", Buffer.alloc(0))]));
    ' "$1" "$2"
}

png_color_type() { # the IHDR colour type byte: 2 RGB, 6 RGBA
    node -e 'console.log(require("fs").readFileSync(process.argv[1])[25])' "$1"
}

run_invert() {
    local id; id=$(post_prompt <(body_of "$WF/invert_api.json")) && wait_history "$id" &&
    test -f "$BASE/output/kiln/invert_00001_.png"
}

view() {
    expect 200 GET '/view?filename=invert_00001_.png&subfolder=kiln&type=output' -D "$WORK/h" &&
    cmp "$WORK/body" "$BASE/output/kiln/invert_00001_.png" &&
    grep -qi '^content-type: image/png' "$WORK/h" &&
    grep -qi '^content-disposition: filename="invert_00001_.png"' "$WORK/h" &&
    expect 200 GET '/api/view?filename=invert_00001_.png%20%5Boutput%5D&subfolder=kiln&type=input' &&
    cmp "$WORK/body" "$BASE/output/kiln/invert_00001_.png" &&
    expect 200 GET '/view?filename=invert_00001_.png&subfolder=kiln&preview=jpeg;80' -D "$WORK/h" &&
    grep -qi '^content-type: image/jpeg' "$WORK/h" &&
    [ "$(head -c 2 "$WORK/body" | od -An -tx1 | tr -d ' ')" = "ffd8" ] &&
    expect 200 GET '/view?filename=invert_00001_.png&subfolder=kiln&channel=rgb' &&
    [ "$(png_color_type "$WORK/body")" = 2 ] &&
    expect 200 GET '/view?filename=invert_00001_.png&subfolder=kiln&channel=a' &&
    [ "$(png_color_type "$WORK/body")" = 6 ]
}

view_preview_alpha() {
    make_png "$BASE/input/see-through.png" 128 &&
    expect 200 GET '/view?filename=see-through.png&type=input&preview=webp;50' -D "$WORK/h" &&
    grep -qi '^content-type: image/png' "$WORK/h" &&
    make_png "$BASE/input/opaque.png" 255 &&
    expect 200 GET '/view?filename=opaque.png&type=input&preview=webp;50' -D "$WORK/h" &&
    grep -qi '^content-type: image/jpeg' "$WORK/h"
}

view_refusals() {
    ln -sf /etc/hostname "$BASE/output/escape.png" && mkdir -p "$BASE/elsewhere" &&
    echo secret >"$BASE/elsewhere/secret.png" && ln -sfn "$BASE/elsewhere" "$BASE/output/linkdir" &&
    expect 400 GET '/view?filename=../secret.png' &&
    expect 400 GET '/view?filename=/etc/passwd' &&
    expect 400 GET '/view?filename=' &&
    expect 403 GET '/view?filename=secret.png&subfolder=../elsewhere' &&
    expect 403 GET '/view?filename=passwd&subfolder=/etc' &&
    expect 403 GET '/view?filename=escape.png' &&
    expect 403 GET '/view?filename=secret.png&subfolder=linkdir' &&
    ! grep -q secret "$WORK/body" &&
    expect 404 GET '/view?filename=missing.png' &&
    expect 404 GET '/view' &&
    expect 400 GET '/view?filename=a.png&type=bogus' && alive
}

upload() {
    make_png "$WORK/cat.png" 255 && make_png "$WORK/cat2.png" 10 &&
    expect 200 POST /upload/image -F "image=@$WORK/cat.png" &&
    jcheck "$WORK/body" 'd.name === "cat.png" && d.subfolder === "" && d.type === "input"' &&
    cmp "$WORK/cat.png" "$BASE/input/cat.png" &&
    expect 200 POST /api/upload/image -F "image=@$WORK/cat.png" &&
    jcheck "$WORK/body" 'd.name === "cat.png"' &&
    expect 200 POST /upload/image -F "image=@$WORK/cat2.png;filename=cat.png" &&
    jcheck "$WORK/body" 'd.name === "cat (1).png"' &&
    cmp "$WORK/cat2.png" "$BASE/input/cat (1).png" &&
    expect 200 POST /upload/image -F "image=@$WORK/cat2.png;filename=cat.png" &&
    jcheck "$WORK/body" 'd.name === "cat (1).png"' &&
    expect 200 POST /upload/image -F "image=@$WORK/cat2.png;filename=cat.png" -F overwrite=true &&
    jcheck "$WORK/body" 'd.name === "cat.png"' && cmp "$WORK/cat2.png" "$BASE/input/cat.png" &&
    expect 200 POST /upload/image -F "image=@$WORK/cat.png" -F subfolder=pets -F type=temp &&
    jcheck "$WORK/body" 'd.name === "cat.png" && d.subfolder === "pets" && d.type === "temp"' &&
    cmp "$WORK/cat.png" "$BASE/temp/pets/cat.png"
}

upload_then_load() {
    expect 200 POST /upload/image -F "image=@$WORK/cat.png" -F subfolder=pets &&
    node -e 'console.log(JSON.stringify({prompt: {
        "1": {class_type: "LoadImage", inputs: {image: "pets/cat.png"}},
        "2": {class_type: "ImageInvert", inputs: {image: ["1", 0]}},
        "3": {class_type: "SaveImage", inputs: {images: ["2", 0], filename_prefix: "loaded"}}}}))' \
        >"$WORK/load.json" &&
    local id; id=$(post_prompt "$WORK/load.json") && wait_history "$id" &&
    jcheck "$WORK/hist.json" "d['$id'].status.status_str === 'success'" &&
    test -f "$BASE/output/loaded_00001_.png"
}

upload_refusals() {
    expect 400 POST /upload/image -F "image=@$WORK/cat.png" -F subfolder=../../escape &&
    expect 400 POST /upload/image -F "image=@$WORK/cat.png;filename=../x.png" &&
    expect 400 POST /upload/image -F "image=@$WORK/cat.png" -F type=bogus &&
    expect 400 POST /upload/image -F "other=@$WORK/cat.png" &&
    jcheck "$WORK/body" 'd.error.type === "missing_image"' &&
    expect 400 POST /upload/image -H 'Content-Type: application/json' -d '{"image": 1}' &&
    jcheck "$WORK/body" 'd.error.type === "invalid_form"' &&
    printf -- '--XyZ\r\nContent-Disposition: form-data; name="image"; filename="t.png"\r\n\r\nabc' \
        >"$WORK/trunc" &&
    expect 400 POST /upload/image -H 'Content-Type: multipart/form-data; boundary=XyZ' \
        --data-binary @"$WORK/trunc" &&
    jcheck "$WORK/body" '/truncated/.test(d.error.message)' &&
    head -c 1200000 /dev/zero >"$WORK/big.bin" &&
    expect 413 POST /upload/image -F "image=@$WORK/big.bin" &&
    ! test -e "$BASE/input/big.bin" && ! test -e "$BASE/escape" && alive
}

mask() {
    make_png "$BASE/output/orig.png" 255 && make_png "$WORK/mask.png" 77 &&
    expect 200 POST /upload/mask -F "image=@$WORK/mask.png" -F subfolder=clipspace \
        -F 'original_ref={"filename": "orig.png", "subfolder": "", "type": "output"}' &&
    jcheck "$WORK/body" 'd.name === "mask.png" && d.subfolder === "clipspace" && d.type === "input"' &&
    node -e '
        const b = require("fs").readFileSync(process.argv[1]);
        if (b.indexOf("tEXt") < 0 || b.indexOf("prompt") < 0) { console.log("text chunk lost"); process.exit(1); }
    ' "$BASE/input/clipspace/mask.png" &&
    expect 200 GET '/view?filename=mask.png&subfolder=clipspace&type=input&channel=a' &&
    expect 404 POST /upload/mask -F "image=@$WORK/mask.png" \
        -F 'original_ref={"filename": "nope.png", "type": "output"}' &&
    expect 400 POST /upload/mask -F "image=@$WORK/mask.png" \
        -F 'original_ref={"filename": "../x.png", "type": "output"}'
}

static_files() {
    expect 200 GET / -D "$WORK/h" && grep -q '<title>t</title>' "$WORK/body" &&
    grep -qi '^content-type: text/html' "$WORK/h" &&
    grep -qi '^cache-control: no-cache' "$WORK/h" &&
    expect 200 GET /assets/app.js -D "$WORK/h" &&
    grep -qi '^content-type: application/javascript' "$WORK/h" &&
    expect 200 GET /assets/app.css -D "$WORK/h" && grep -qi '^content-type: text/css' "$WORK/h" &&
    expect 404 GET /assets/missing.js &&
    expect 404 GET /api/assets/app.js &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$(URL /../../etc/passwd)")" != 200 ] &&
    [ "$(curl -s -I -o "$WORK/h" -w '%{http_code}' "$(URL /)")" = 200 ]
}

origin() {
    expect 403 GET /prompt -H 'Origin: http://evil.example' &&
    expect 403 POST /prompt -H 'Origin: http://evil.example' -d '{}' &&
    expect 200 GET /prompt -H "Origin: http://127.0.0.1:$PORT" &&
    expect 200 GET /prompt -H 'Origin: http://127.0.0.1' &&
    expect 403 GET /prompt -H "Origin: http://127.0.0.1:1" &&
    expect 200 GET /prompt -H 'Origin: null' &&
    expect 403 GET /prompt -H 'Sec-Fetch-Site: cross-site' &&
    expect 200 OPTIONS /prompt &&
    expect 403 OPTIONS /prompt -H 'Origin: http://evil.example'
}

# A request line that is not HTTP, then a connection dropped halfway through its body.
garbage() {
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf 'GARBAGE\r\n\r\n' >&3
    timeout 5 cat <&3 >/dev/null
    exec 3>&-
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf 'POST /prompt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"prompt"' >&3
    exec 3>&-
}

bad_requests() {
    expect 400 POST /prompt -H 'Content-Type: application/json' -d '{"prompt": ' &&
    jcheck "$WORK/body" 'd.error.type === "invalid_json" && /line 1/.test(d.error.details)' &&
    expect 400 POST /prompt -F "image=@$WORK/cat.png" &&
    jcheck "$WORK/body" 'd.error.type === "invalid_json"' &&
    expect 400 POST /prompt -d '{"prompt": {}, "number": "soon"}' &&
    expect 400 POST /prompt -d '{"prompt": {}, "extra_data": 5}' &&
    expect 400 POST /prompt -d '{"prompt": 17}' && jcheck "$WORK/body" 'd.error && d.node_errors' &&
    head -c 2000000 /dev/zero | tr '\0' ' ' >"$WORK/big.json" &&
    expect 413 POST /prompt --data-binary @"$WORK/big.json" &&
    jcheck "$WORK/body" 'd.error.type === "request_too_large"' &&
    expect 411 POST /prompt -H 'Transfer-Encoding: chunked' -d '{}' &&
    expect 404 GET /api/no/such/route && jcheck "$WORK/body" 'd.error.type === "not_found"' &&
    expect 404 POST /nowhere -d '{}' &&
    expect 405 GET /interrupt && expect 405 POST /object_info &&
    expect 400 GET /ws &&
    expect 400 POST /queue -d 'not json' && expect 400 POST /history -d '[' &&
    expect 200 POST /interrupt -d 'not json' && expect 200 POST /free &&
    garbage && alive
}

check "a prompt writes an image to view" run_invert
check "/view: raw file, annotated name, JPEG preview, rgb and alpha channels" view
check "/view: a webp preview of a translucent image stays PNG" view_preview_alpha
check "/view refuses .., absolute paths, escaping subfolders and links; 404s" view_refusals
check "/upload/image: dedup, renaming, overwrite, subfolder, type" upload
check "an uploaded image feeds LoadImage" upload_then_load
check "/upload/image refuses escapes, bad types, non-multipart, truncated, oversized" \
    upload_refusals
check "/upload/mask keeps text chunks; missing or escaping originals refused" mask
check "static files from --front-end-root with MIME types" static_files
check "origin check: 403 cross-origin, same host or no port allowed, OPTIONS" origin
check "bad requests get clear errors and the server keeps serving" bad_requests
stop_server TERM; rc=$?
check "SIGTERM stops the server cleanly (exit status 0)" test "$rc" -eq 0

# No web folder: a placeholder page. --enable-cors-header: CORS headers, no origin check.
start_server "$WORK/base2" --enable-cors-header --front-end-root "$WORK/no-web" || exit 1
placeholder() {
    expect 200 GET / && grep -q 'kiln' "$WORK/body" && grep -q '/object_info' "$WORK/body" &&
    expect 404 GET /app.js
}
cors() {
    expect 200 GET /prompt -H 'Origin: http://evil.example' -D "$WORK/h" &&
    grep -qi '^access-control-allow-origin: \*' "$WORK/h" &&
    grep -qi '^access-control-allow-methods: POST, GET, DELETE, PUT, OPTIONS' "$WORK/h" &&
    expect 200 OPTIONS /prompt -H 'Origin: http://evil.example' -D "$WORK/h" &&
    grep -qi '^access-control-allow-headers: Content-Type, Authorization' "$WORK/h"
}
check "no web folder: a placeholder page at /" placeholder
check "--enable-cors-header: permissive CORS instead of the origin check" cors
stop_server TERM; rc=$?
check "SIGTERM stops the second server cleanly" test "$rc" -eq 0

# Two listen addresses; a port already taken is a clear error with exit status 1.
listen_twice() {
    start_server "$WORK/base3" --listen 127.0.0.1,127.0.0.2 || return 1
    expect 200 GET /prompt &&
    curl -sf "http://127.0.0.2:$PORT/prompt" | grep -q queue_remaining || return 1
    local rc=0
    "$KILN" serve --port "$PORT" --base-directory "$WORK/base4" >/dev/null 2>"$WORK/dup.err" ||
        rc=$?
    [ "$rc" -eq 1 ] && grep -q "cannot listen on 127.0.0.1 port $PORT" "$WORK/dup.err" &&
    stop_server TERM
}
check "--listen with two addresses; a port in use is a clear error" listen_twice
finish
