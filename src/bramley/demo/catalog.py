"""Real Apple hardware and OS releases the demo fleet (and the simulator) draw from."""
from __future__ import annotations

# (marketing model, model identifier, platform, processor, memory, [(os_version, build), ...])
MACS = [
    ("MacBook Air (M1, 2020)", "MacBookAir10,1", "Apple M1", "8 GB"),
    ("MacBook Air (13-inch, M2, 2022)", "Mac14,2", "Apple M2", "16 GB"),
    ("MacBook Air (15-inch, M3, 2024)", "Mac15,13", "Apple M3", "16 GB"),
    ("MacBook Pro (14-inch, M3 Pro, Nov 2023)", "Mac15,6", "Apple M3 Pro", "18 GB"),
    ("MacBook Pro (16-inch, 2021)", "MacBookPro18,2", "Apple M1 Max", "32 GB"),
    ("MacBook Pro (14-inch, M4 Pro, 2024)", "Mac16,8", "Apple M4 Pro", "24 GB"),
    ("Mac mini (M2, 2023)", "Mac14,3", "Apple M2", "8 GB"),
    ("iMac (24-inch, M3, 2023)", "Mac15,4", "Apple M3", "8 GB"),
    ("Mac Studio (2023)", "Mac14,13", "Apple M2 Max", "32 GB"),
    ("MacBook Pro (16-inch, 2019)", "MacBookPro16,1", "6-Core Intel Core i7", "16 GB"),
]
MACOS = [("14.7.1", "23H222"), ("15.1.1", "24B91"), ("15.2", "24C101"), ("15.3.1", "24D70"),
         ("13.7.1", "22H221"), ("26.1", "25B78")]

IPHONES = [
    ("iPhone 13", "iPhone14,5"), ("iPhone 14", "iPhone14,7"), ("iPhone 14 Pro", "iPhone15,2"),
    ("iPhone 15", "iPhone15,4"), ("iPhone 15 Pro", "iPhone16,1"), ("iPhone 16", "iPhone17,3"),
    ("iPhone 16 Pro Max", "iPhone17,2"), ("iPhone SE (3rd generation)", "iPhone14,6"),
]
IOS = [("17.7.2", "21H221"), ("18.1.1", "22B91"), ("18.2", "22C152"), ("18.3.1", "22D72"), ("26.1", "23B85")]

IPADS = [
    ("iPad (10th generation)", "iPad13,18"), ("iPad Air 11-inch (M2)", "iPad14,8"),
    ("iPad Pro 11-inch (M4)", "iPad16,3"), ("iPad mini (A17 Pro)", "iPad16,1"), ("iPad (9th generation)", "iPad12,1"),
]
IPADOS = IOS

APPLE_TVS = [("Apple TV 4K (3rd generation)", "AppleTV14,1"), ("Apple TV 4K (2nd generation)", "AppleTV11,1")]
TVOS = [("17.6", "21M71"), ("18.1", "22J580"), ("18.2", "22K155")]

FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia", "Tim", "Frances",
               "Guido", "Hedy", "John", "Katherine", "Edsger", "Donald", "Joan", "Vint", "Sophie", "Marie", "Niklaus",
               "Anita", "Bjarne", "Shafi", "Leslie", "Yukihiro", "Rasmus", "Evelyn", "James"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Perlman",
              "Berners-Lee", "Allen", "van Rossum", "Lamarr", "McCarthy", "Johnson", "Dijkstra", "Knuth", "Clarke",
              "Cerf", "Wilson", "Curie", "Wirth", "Borg", "Stroustrup", "Goldwasser", "Lamport", "Matsumoto",
              "Lerdorf", "Berezin", "Gosling"]
DEPARTMENTS = ["Engineering", "Sales", "Marketing", "Finance", "Design", "Support", "People", "Legal"]
TITLES = ["Engineer", "Account Executive", "Designer", "Analyst", "Manager", "Specialist", "Director"]

BLUEPRINTS = [
    ("Standard Mac", "ss-laptop", "aqua-800", "Baseline for every company Mac"),
    ("Engineering Mac", "ss-code", "blue-600", "Developer tools and relaxed Gatekeeper for engineers"),
    ("Corporate iPhone", "ss-iphone", "green-700", "Supervised company iPhones"),
    ("Shared iPad", "ss-ipad", "orange-500", "Kiosk and shared iPads"),
    ("Conference Room", "ss-tv", "purple-700", "Apple TVs in meeting rooms"),
]

MAC_APPS = [
    ("Safari", "com.apple.Safari", "18.1.1", "Apple"), ("Google Chrome", "com.google.Chrome", "131.0.6778.86", "Google"),
    ("Slack", "com.tinyspeck.slackmacgap", "4.41.105", "Slack"), ("Zoom", "us.zoom.xos", "6.2.11", "Zoom"),
    ("Microsoft Outlook", "com.microsoft.Outlook", "16.91", "Microsoft"),
    ("1Password", "com.1password.1password", "8.10.56", "AgileBits"),
    ("Visual Studio Code", "com.microsoft.VSCode", "1.95.3", "Microsoft"),
    ("Kandji Self Service", "io.kandji.Kandji-Self-Service", "4.2.1", "Kandji"),
]
IOS_APPS = [
    ("Slack", "com.tinyspeck.chatlyio", "24.11.10", "Slack"), ("Okta Verify", "com.okta.mobile", "9.30.0", "Okta"),
    ("Microsoft Outlook", "com.microsoft.Office.Outlook", "4.2446.0", "Microsoft"),
    ("Zoom", "us.zoom.videomeetings", "6.2.11", "Zoom"),
]
