# Formulary bootstrap for Windows, served by @@SERVER@@
#
# Installs the `formulary` client into your own profile (%LOCALAPPDATA%\Programs\Formulary, or
# $env:FORMULARY_BIN_DIR), checks it against the SHA-256 the server publishes, adds that folder
# to your own PATH, and runs `formulary setup`, which points pip, uv, R, npm and the others at
# your organisation's view. Nothing needs admin rights.
#
# The token for package clients is read from $env:FORMULARY_TOKEN; else you sign in with your
# browser (press Enter), or paste a token created at @@SERVER@@account (hidden).
# Read this script before running it:
#     irm @@SERVER@@setup.ps1
$ErrorActionPreference = 'Stop'

$server = '@@SERVER@@'

$arch = switch ($env:PROCESSOR_ARCHITECTURE) {
    'AMD64' { 'x86_64' }
    'ARM64' { 'aarch64' }
    default { "$env:PROCESSOR_ARCHITECTURE".ToLowerInvariant() }
}
$platform = "$arch-windows"

# The newest `formulary` client this server allows, per platform, with its published SHA-256.
$builds = @{
@@CASES@@}
$build = $builds[$platform]
if (-not $build) {
    throw "$server offers no formulary client for $platform. Ask the people who run it to add one (docs/self-service.md, 'The bootstrap')."
}

function Read-Hidden([string] $prompt) {
    $secure = Read-Host -AsSecureString $prompt
    [Runtime.InteropServices.Marshal]::PtrToStringBSTR([Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure))
}

# Browser sign-in (the device flow `formulary setup --device` uses): the server gives a code to
# approve on its /device page; once the person approves it, a token for package clients.
function Get-TokenWithBrowser {
    $computer = ("$env:COMPUTERNAME" -replace '[^A-Za-z0-9._-]', '')
    try {
        $started = Invoke-RestMethod -Method Post -Uri "${server}api/v1/device/code" -ContentType 'application/json' -Body (@{ client_name = "formulary bootstrap on $computer" } | ConvertTo-Json)
    } catch {
        throw "$server did not start a browser sign-in: $($_.ErrorDetails.Message) Paste a token instead (create one at ${server}account)."
    }
    Write-Host "To sign in, open $($started.verification_uri_complete) in your browser, sign in, and approve the code $($started.user_code) (it expires in 10 minutes)."
    Write-Host 'Waiting for approval...'
    $interval = 5
    while ($true) {
        Start-Sleep -Seconds $interval
        try {
            $issued = Invoke-RestMethod -Method Post -Uri "${server}api/v1/device/token" -ContentType 'application/json' -Body (@{ device_code = $started.device_code } | ConvertTo-Json)
            Write-Host "Approved by $($issued.username): a token for package clients was issued."
            return $issued.token
        } catch {
            $problem = $null
            try { $problem = $_.ErrorDetails.Message | ConvertFrom-Json } catch { }
            if (-not $problem) { throw "Could not reach $server while waiting for approval: $($_.Exception.Message). Run this script again." }
            switch ($problem.error) {
                'authorization_pending' { }
                'slow_down' { $interval += 5 }
                default { throw "The browser sign-in did not finish: $($problem.detail)" }
            }
        }
    }
}

$token = $env:FORMULARY_TOKEN
if (-not $token) {
    $answer = Read-Hidden "Sign in with your browser [Y/n], or paste a token for package clients (from ${server}account)"
    if ($answer -match '^(|y|yes)$') {
        $token = Get-TokenWithBrowser
    } elseif ($answer -match '^(n|no)$') {
        $token = Read-Hidden "Paste your token for package clients (create one at ${server}account)"
    } else {
        $token = $answer
    }
}
if ($token -notmatch '^frm_[A-Za-z0-9_-]+$') {
    throw "That is not a Formulary token (tokens start with frm_); create one at ${server}account."
}

$bin = if ($env:FORMULARY_BIN_DIR) { $env:FORMULARY_BIN_DIR } else { Join-Path $env:LOCALAPPDATA 'Programs\Formulary' }
New-Item -ItemType Directory -Force -Path $bin | Out-Null
$exe = Join-Path $bin 'formulary.exe'
$partial = "$exe.download"

Write-Host "Downloading formulary $($build.version) for $platform from $server"
$basic = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("formulary:$token"))
try {
    Invoke-WebRequest -UseBasicParsing -Uri $build.url -Headers @{ Authorization = "Basic $basic" } -OutFile $partial
} catch {
    Remove-Item -Force -ErrorAction SilentlyContinue $partial
    throw "The server refused or could not send the formulary client: $($_.Exception.Message) $($_.ErrorDetails.Message)"
}
$actual = (Get-FileHash -Algorithm SHA256 -Path $partial).Hash.ToLowerInvariant()
if ($actual -ne $build.sha256) {
    Remove-Item -Force $partial
    throw "The download does not match the SHA-256 the server published ($actual instead of $($build.sha256)); nothing was installed. Try again, and tell the people who run $server if it happens again."
}
Move-Item -Force $partial $exe
Write-Host "Installed formulary $($build.version) in $exe (SHA-256 checked)."

$token | & $exe setup --server $server --token-stdin
if ($LASTEXITCODE -ne 0) {
    throw "formulary setup did not finish (its message is above); run it again with: $exe setup --server $server"
}

$userPath = [Environment]::GetEnvironmentVariable('Path', 'User')
if (-not (("$userPath" -split ';') -contains $bin)) {
    [Environment]::SetEnvironmentVariable('Path', ("$userPath".TrimEnd(';') + ";$bin").TrimStart(';'), 'User')
    $env:Path = "$env:Path;$bin"
    Write-Host "Added $bin to your PATH (new terminals see it)."
}
Write-Host 'Next: `formulary tools list` shows the desktop tools you may install; `formulary doctor` checks every client.'
