"""The built-in catalogue's words: themes of related tags, parts of course names, tag spellings.

Without a real catalogue, the courses, course tags and assessments are invented from these
hand-written themes, so that tags that belong together (maya, rigging, zbrush) share a topic. The
stop words and aliases are used with any catalogue, built in or real, to match a name to the topic
whose tags and courses use its words.
"""

from __future__ import annotations

from typing import NamedTuple

# A course's level, as the export spells it.
LEVELS = ("Beginner", "Intermediate", "Advanced")

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "for",
        "in",
        "of",
        "on",
        "to",
        "with",
        "using",
        "from",
        "by",
        "your",
        "you",
        "core",
        "skills",
        "getting",
        "started",
        "introduction",
        "intro",
        "fundamentals",
        "basics",
        "advanced",
        "cc",
        "part",
        "series",
        "volume",
        "course",
    ]
)
# Assessment tags spell some technologies differently from course tags.
ALIASES = {
    "c-sharp": ("c#", "csharp"),
    "c-plus-plus": ("c++", "cpp"),
    "node-js": ("nodejs", "node"),
    "angular-js": ("angularjs", "angular"),
    "aspnet-mvc-5": ("asp.net-mvc", "aspdotnet", "mvc5"),
    "html5": ("html",),
    "css": ("css3",),
}


class Theme(NamedTuple):
    """A hand-written topic of the built-in catalogue."""

    audience: float  # how many learners care, relative
    catalogue: float  # how many courses it has, relative
    tags: str  # core course tags
    stems: str  # products that combine with facets into more tags ("maya" + "rigging")
    facets: str
    assessments: str


THEMES = (
    Theme(
        audience=2.0,
        catalogue=16.0,
        tags="3d-modeling 3d-rendering 3d-texturing 3d-animation 3d-sculpting 3d-rigging "
        "3d-lighting 3d-dynamics maya 3ds-max zbrush cinema-4d blender modo houdini uv-mapping "
        "mudbox",
        stems="maya 3ds-max zbrush cinema-4d modo blender houdini",
        facets="modeling rendering texturing animation rigging lighting dynamics scripting",
        assessments="maya-core-skills maya-character-modeling "
        "zbrush-core-skills 3ds-max-environment-modeling",
    ),
    Theme(
        audience=2.0,
        catalogue=4.0,
        tags="game-design game-art game-modeling game-development unity unreal-engine level-design "
        "game-programming cryengine game-audio",
        stems="unity unreal-engine cryengine",
        facets="scripting animation lighting ui physics networking shaders ai terrain",
        assessments="unity-core-skills game-environment-art",
    ),
    Theme(
        audience=1.0,
        catalogue=7.0,
        tags="compositing creative-pipeline motion-graphics visual-effects nuke after-effects "
        "matchmoving rotoscoping color-grading green-screen",
        stems="after-effects nuke fusion mocha",
        facets="keying tracking expressions particles titles 3d-camera scripting",
        assessments="after-effects-cc nuke-core-skills",
    ),
    Theme(
        audience=1.0,
        catalogue=4.0,
        tags="illustration digital-painting concept-art drawing character-design matte-painting "
        "comics sketching",
        stems="krita painter sketchbook",
        facets="brushes portraits environments characters perspective",
        assessments="",
    ),
    Theme(
        audience=2.0,
        catalogue=4.0,
        tags="graphic-design image-editing photoshop illustrator indesign typography logo-design "
        "print-design desktop-publishing branding",
        stems="photoshop illustrator indesign",
        facets="layers masks selections effects workflow retouching vectors color",
        assessments="graphic-design photoshop illustrator-cc indesign-cc-essentials",
    ),
    Theme(
        audience=0.7,
        catalogue=2.0,
        tags="photography lightroom photo-retouching portrait-photography landscape-photography "
        "camera-raw studio-lighting",
        stems="lightroom camera",
        facets="presets develop catalog exposure composition",
        assessments="",
    ),
    Theme(
        audience=1.0,
        catalogue=2.5,
        tags="video-editing video-production premiere-pro final-cut-pro audio sound-design "
        "davinci-resolve animation 2d-animation",
        stems="premiere-pro final-cut-pro audition",
        facets="editing audio color titles effects workflow",
        assessments="premiere-pro-cc video-production",
    ),
    Theme(
        audience=0.8,
        catalogue=5.0,
        tags="part-modeling assembly-modeling parametric-modeling solidworks fusion-360 inventor "
        "surface-modeling fea-simulation 3d-printing sheet-metal product-design",
        stems="solidworks inventor fusion-360 catia",
        facets="drawings assemblies simulation surfacing weldments sketching",
        assessments="solidworks-core-skills fusion-360-core-skills",
    ),
    Theme(
        audience=0.8,
        catalogue=4.0,
        tags="architecture-modeling bim revit autocad drafting-drawings construction-documentation "
        "structural-design civil-3d sketchup",
        stems="revit autocad civil-3d",
        facets="families annotation detailing collaboration sheets topography",
        assessments="revit-architecture autocad-essentials",
    ),
    Theme(
        audience=0.5,
        catalogue=2.5,
        tags="visualization-rendering vray keyshot product-visualization "
        "architectural-visualization arnold",
        stems="vray arnold keyshot",
        facets="materials lighting rendering cameras",
        assessments="",
    ),
    Theme(
        audience=2.5,
        catalogue=3.0,
        tags="network-infrastructure networking routing switching routing-switching tcpip "
        "wireless-networking network-security ccna ccnp network-fundamentals",
        stems="cisco juniper",
        facets="routing switching security wireless troubleshooting voice ipv6 monitoring",
        assessments="networking-essentials cisco-routing-and-switching",
    ),
    Theme(
        audience=3.0,
        catalogue=3.0,
        tags="server-infrastructure virtualization windows-server hyper-v vmware active-directory "
        "group-policy exchange-server storage messaging-collaboration",
        stems="windows-server vmware exchange hyper-v",
        facets="administration deployment storage networking clustering backup",
        assessments="active-directory-administration group-policy-administration "
        "windows-server-management",
    ),
    Theme(
        audience=2.0,
        catalogue=2.5,
        tags="endpoint-management operating-systems sccm windows-10 mobile-device-management "
        "it-fundamentals hardware comptia-a+ help-desk",
        stems="sccm windows-10 intune",
        facets="deployment configuration troubleshooting imaging",
        assessments="",
    ),
    Theme(
        audience=2.5,
        catalogue=2.0,
        tags="linux bash shell-scripting red-hat ubuntu system-administration comptia-linux+",
        stems="linux red-hat ubuntu",
        facets="administration networking security storage kernel",
        assessments="linux-system-administration",
    ),
    Theme(
        audience=4.0,
        catalogue=2.5,
        tags="cloud-computing aws cloud-architecture cloud-services cloud-infrastructure",
        stems="aws",
        facets="lambda s3 ec2 dynamodb cloudformation iam vpc rds networking security "
        "developer-tools big-data",
        assessments="aws-solutions-architect",
    ),
    Theme(
        audience=3.5,
        catalogue=2.5,
        tags="microsoft-azure azure azure-functions azure-storage paas",
        stems="azure",
        facets="app-service active-directory networking devops sql virtual-machines "
        "service-fabric monitoring",
        assessments="azure-administrator azure-for-developers azure-infrastructure-as-a-service",
    ),
    Theme(
        audience=3.5,
        catalogue=2.5,
        tags="devops docker kubernetes continuous-integration continuous-delivery "
        "configuration-management automation ansible puppet chef jenkins",
        stems="docker kubernetes ansible",
        facets="networking security deployment monitoring orchestration",
        assessments="docker",
    ),
    Theme(
        audience=2.5,
        catalogue=1.0,
        tags="powershell scripting desired-state-configuration",
        stems="powershell",
        facets="remoting modules scripting automation workflows",
        assessments="powershell",
    ),
    Theme(
        audience=4.0,
        catalogue=3.5,
        tags="information-security penetration-testing ethical-hacking security secure-coding "
        "digital-forensics incident-response risk-management cissp malware-analysis",
        stems="cissp comptia-security+",
        facets="cryptography access-control risk network-security",
        assessments="security-for-hackers-and-developers",
    ),
    Theme(
        audience=7.0,
        catalogue=2.5,
        tags="javascript javascript-libraries javascript-frameworks es6 jquery typescript async "
        "spa coffeescript",
        stems="javascript typescript",
        facets="testing patterns performance debugging modules",
        assessments="javascript jquery typescript-development",
    ),
    Theme(
        audience=4.0,
        catalogue=1.5,
        tags="angular angularjs rxjs ngrx",
        stems="angular",
        facets="forms routing testing components",
        assessments="angular angular-js",
    ),
    Theme(
        audience=3.5,
        catalogue=1.5,
        tags="react react.js redux react-native jsx flux",
        stems="react",
        facets="hooks testing routing",
        assessments="react",
    ),
    Theme(
        audience=3.5,
        catalogue=1.5,
        tags="nodejs express.js npm mongodb rest api-design",
        stems="nodejs",
        facets="testing security streams",
        assessments="node-js",
    ),
    Theme(
        audience=4.0,
        catalogue=2.5,
        tags="html5 css css3 html sass less responsive-design bootstrap web-design "
        "front-end-web-development",
        stems="css html5",
        facets="layout animation grid flexbox",
        assessments="html5 css",
    ),
    Theme(
        audience=6.0,
        catalogue=3.0,
        tags="c# .net linq clr .net-core wpf windows-forms entity-framework",
        stems="c# .net",
        facets="async generics collections testing debugging",
        assessments="c-sharp",
    ),
    Theme(
        audience=4.0,
        catalogue=2.5,
        tags="asp.net asp.net-mvc asp.net-core mvc mvc3 mvc4 mvc5 web-api signalr razor",
        stems="asp.net",
        facets="security testing deployment",
        assessments="aspnet-mvc-5",
    ),
    Theme(
        audience=4.0,
        catalogue=2.5,
        tags="java java-ee spring hibernate jvm maven gradle concurrency servlets",
        stems="java spring",
        facets="testing collections streams security",
        assessments="java",
    ),
    Theme(
        audience=4.5,
        catalogue=2.0,
        tags="python django flask numpy pandas python-3 scripting-languages",
        stems="python django",
        facets="testing web data automation",
        assessments="python",
    ),
    Theme(
        audience=2.5,
        catalogue=1.5,
        tags="c++ cpp stl boost memory-management embedded-systems",
        stems="c++",
        facets="templates concurrency",
        assessments="c-plus-plus",
    ),
    Theme(
        audience=3.5,
        catalogue=3.0,
        tags="sql sql-server t-sql database-administration database-design mysql postgresql "
        "oracle-database nosql",
        stems="sql-server oracle",
        facets="performance querying security backup",
        assessments="mysql t-sql-querying",
    ),
    Theme(
        audience=3.0,
        catalogue=2.0,
        tags="data-science machine-learning data-analysis big-data hadoop spark r statistics "
        "data-visualization",
        stems="spark hadoop",
        facets="streaming sql analytics",
        assessments="",
    ),
    Theme(
        audience=2.0,
        catalogue=2.0,
        tags="business-intelligence power-bi ssrs ssis data-warehousing reporting tableau",
        stems="power-bi tableau",
        facets="dashboards modeling",
        assessments="",
    ),
    Theme(
        audience=3.0,
        catalogue=2.5,
        tags="android ios swift objective-c xamarin mobile-application-development kotlin xcode",
        stems="android ios xamarin",
        facets="ui testing networking",
        assessments="android ios-development-with-swift",
    ),
    Theme(
        audience=2.0,
        catalogue=2.5,
        tags="productivity-apps microsoft-office excel word powerpoint outlook office-365 "
        "sharepoint",
        stems="excel sharepoint office-365",
        facets="formulas administration collaboration",
        assessments="using-microsoft-office-2016 sharepoint",
    ),
    Theme(
        audience=2.5,
        catalogue=2.0,
        tags="project-management agile scrum kanban soft-skills leadership communication careers",
        stems="agile scrum",
        facets="planning estimation coaching",
        assessments="the-scrum-framework",
    ),
    Theme(
        audience=2.0,
        catalogue=1.5,
        tags="unit-testing test-driven-development tdd automated-testing selenium testing "
        "developer-tools",
        stems="selenium",
        facets="webdriver grid",
        assessments="",
    ),
    Theme(
        audience=2.5,
        catalogue=1.5,
        tags="design-patterns object-oriented-design domain-driven-design refactoring clean-code "
        "software-architecture microservices",
        stems="microservices",
        facets="patterns messaging",
        assessments="",
    ),
    Theme(
        audience=1.5,
        catalogue=1.5,
        tags="ruby ruby-on-rails php wordpress laravel cms drupal",
        stems="wordpress php",
        facets="themes plugins security",
        assessments="ruby-programming php-development",
    ),
    Theme(
        audience=1.0,
        catalogue=1.0,
        tags="functional-programming f# haskell scala clojure elixir erlang",
        stems="scala",
        facets="akka",
        assessments="",
    ),
    Theme(
        audience=1.0,
        catalogue=1.0,
        tags="golang rust system-programming concurrency-patterns",
        stems="golang rust",
        facets="concurrency testing",
        assessments="",
    ),
)

COURSE_NOUNS = (
    "fundamentals",
    "getting-started",
    "introduction",
    "in-depth",
    "best-practices",
    "deep-dive",
    "essentials",
    "for-beginners",
    "tips-tricks",
    "workflow",
    "projects",
    "patterns",
    "troubleshooting",
    "administration",
    "playbook",
    "quick-start",
    "mastering",
    "big-picture",
)
COURSE_QUALIFIERS = (
    "building",
    "advanced",
    "practical",
    "enterprise",
    "modern",
    "secure",
    "real-world",
    "scalable",
    "system-admin",
    "web",
    "team",
    "production",
)
INTEREST_SUFFIXES = ("fundamentals", "basics", "advanced", "tips", "2", "core", "tools", "design")
