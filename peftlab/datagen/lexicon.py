"""Word lists for the generated Korean movie-review language.

Every evaluative predicate carries a polarity (+1 긍정, -1 부정). The review generator, the
pretraining corpus and the instruction set all draw from these lists, so the three share one
vocabulary and one grammar.
"""

from __future__ import annotations

from .korean import Predicate, b_irregular, ha, ida, reg

POS, NEG = 1, -1

# Aspects of a film a reviewer talks about (the subject of an evaluative clause).
ASPECTS = [
    "연기", "스토리", "연출", "음악", "영상미", "대사", "결말", "배우들 연기", "주연 배우", "조연들",
    "CG", "액션", "전개", "각본", "캐릭터", "분위기", "편집", "OST", "촬영", "색감", "사운드", "반전",
    "유머", "후반부", "초반부", "설정", "구성", "메시지", "감독의 연출", "미장센", "엔딩", "주인공",
    "악역", "줄거리", "시나리오", "액션 장면", "영상", "연기 호흡", "세계관", "배경 음악",
]

# Predicates that describe an aspect (연기가 훌륭했다).
ASPECT_PREDICATES: list[Predicate] = [
    # positive
    reg("좋", "좋았", "좋아", POS, mot=True),
    *(ha(r, POS, mot=True) for r in [
        "훌륭", "탄탄", "신선", "깔끔", "섬세", "완벽", "참신", "독특", "유쾌", "훈훈", "생생", "근사",
        "따뜻", "풍성", "화려", "경쾌", "치밀", "통쾌", "웅장", "충실",
    ]),
    *(b_irregular(s, POS, mot=True) for s in ["아름답", "자연스럽", "사랑스럽", "만족스럽", "흥미롭", "놀랍", "즐겁", "새롭"]),
    *(ida(n, POS) for n in ["감동적", "인상적", "매력적", "압도적", "독창적", "환상적", "효과적"]),
    *(ida(n, POS, negatable=False) for n in ["최고", "일품", "압권", "수준급", "명품"]),
    reg("뛰어나", "뛰어났", "뛰어나", POS, mot=True),
    reg("멋지", "멋졌", "멋져", POS),
    reg("세련되", "세련됐", "세련돼", POS),
    reg("알차", "알찼", "알차", POS),
    reg("재미있", "재미있었", "재미있어", POS),
    reg("괜찮", "괜찮았", "괜찮아", POS),
    reg("예쁘", "예뻤", "예뻐", POS),
    reg("돋보이", "돋보였", "돋보여", POS, adjective=False),
    reg("빛나", "빛났", "빛나", POS, adjective=False),
    reg("설득력 있", "설득력 있었", "설득력 있어", POS, mot=False, short_neg=False),
    reg("매끄럽", "매끄러웠", "매끄러워", POS, mot=True),
    # positive long tail (rare in labelled reviews, common in the corpus)
    *(ha(r, POS, mot=True) for r in [
        "출중", "탁월", "절묘", "흡족", "우아", "정교", "기발", "유려", "풍부", "진솔", "묵직", "애틋", "포근",
        "산뜻", "청량", "상큼", "흥미진진", "견고", "노련", "능숙", "대단", "굉장", "황홀", "세밀", "정갈",
        "영리", "똑똑", "찬란", "짜릿", "뭉클", "든든", "시원", "후련", "단단",
    ]),
    b_irregular("경이롭", POS, mot=True),
    *(ida(n, POS) for n in ["감각적", "서정적", "극적", "역동적", "입체적", "혁신적", "파격적", "이상적", "예술적"]),
    *(ida(n, POS, negatable=False) for n in ["걸작", "수작", "명작", "웰메이드", "인생작", "백점", "보물"]),
    reg("빼어나", "빼어났", "빼어나", POS, mot=True),
    reg("기막히", "기막혔", "기막혀", POS, adjective=False, short_neg=False),
    reg("끝내주", "끝내줬", "끝내줘", POS, adjective=False, short_neg=False),
    reg("눈부시", "눈부셨", "눈부셔", POS),
    reg("엄청나", "엄청났", "엄청나", POS),
    reg("재치있", "재치있었", "재치있어", POS, short_neg=False),
    reg("센스있", "센스있었", "센스있어", POS, short_neg=False),
    reg("여운이 남", "여운이 남았", "여운이 남아", POS, adjective=False, negatable=False),
    reg("완성도가 높", "완성도가 높았", "완성도가 높아", POS, short_neg=False),
    reg("긴장감이 넘치", "긴장감이 넘쳤", "긴장감이 넘쳐", POS, adjective=False, negatable=False),
    # negative
    reg("나쁘", "나빴", "나빠", NEG),
    *(ha(r, NEG) for r in [
        "지루", "뻔", "진부", "엉성", "어색", "산만", "허술", "밋밋", "식상", "유치", "답답", "불편",
        "난해", "허무", "어수선", "조잡", "빈약", "장황", "느슨", "과", "부족", "불쾌",
    ]),
    *(b_irregular(s, NEG) for s in [
        "억지스럽", "실망스럽", "부자연스럽", "촌스럽", "아쉽", "지겹", "시끄럽", "어지럽", "혼란스럽", "싱겁",
    ]),
    *(ida(n, NEG) for n in ["작위적", "상투적", "인위적", "비현실적"]),
    *(ida(n, NEG, negatable=False) for n in ["최악", "별로", "엉망", "낙제점", "실망"]),
    reg("재미없", "재미없었", "재미없어", NEG, negatable=False),
    reg("형편없", "형편없었", "형편없어", NEG, negatable=False),
    reg("어설프", "어설펐", "어설퍼", NEG),
    reg("거슬리", "거슬렸", "거슬려", NEG, adjective=False),
    reg("늘어지", "늘어졌", "늘어져", NEG, adjective=False),
    reg("개연성 없", "개연성 없었", "개연성 없어", NEG, negatable=False),
    # negative long tail
    *(ha(r, NEG) for r in [
        "지지부진", "무성의", "허접", "조악", "졸렬", "따분", "무미건조", "심심", "구태의연", "황당", "한심",
        "민망", "느끼", "난잡", "부실", "미흡", "미숙", "지저분", "혼잡", "복잡", "피곤", "거북", "썰렁",
        "엉뚱", "빤", "괴상", "불친절", "찝찝", "허탈", "씁쓸", "갑갑", "지리멸렬",
    ]),
    *(b_irregular(s, NEG) for s in ["단조롭", "괴롭", "짜증스럽", "번거롭", "어렵", "낯뜨겁", "역겹"]),
    *(ida(n, NEG) for n in ["신파적", "평면적", "설명적", "노골적", "자극적", "소모적", "일방적", "기계적"]),
    *(ida(n, NEG, negatable=False) for n in ["졸작", "망작", "태작", "실패작", "용두사미", "고문", "엉망진창", "낭비"]),
    reg("어이없", "어이없었", "어이없어", NEG, negatable=False),
    reg("어처구니없", "어처구니없었", "어처구니없어", NEG, negatable=False),
    reg("터무니없", "터무니없었", "터무니없어", NEG, negatable=False),
    reg("성의없", "성의없었", "성의없어", NEG, negatable=False),
    reg("오글거리", "오글거렸", "오글거려", NEG, adjective=False),
    reg("서툴", "서툴렀", "서툴러", NEG, adjective=False),
    reg("과장되", "과장됐", "과장돼", NEG),
    reg("완성도가 낮", "완성도가 낮았", "완성도가 낮아", NEG, short_neg=False),
    reg("긴장감이 떨어지", "긴장감이 떨어졌", "긴장감이 떨어져", NEG, adjective=False, short_neg=False),
    reg("흐름이 끊기", "흐름이 끊겼", "흐름이 끊겨", NEG, adjective=False, short_neg=False),
]

# Predicates about the viewer's experience (끝까지 몰입했다, 돈이 아까웠다).
VIEWER_PREDICATES: list[Predicate] = [
    reg("몰입하", "몰입했", "몰입해", POS, adjective=False, mot=True, short_neg=False, viewer=True),
    reg("감동받", "감동받았", "감동받아", POS, adjective=False, mot=True, short_neg=False, viewer=True),
    reg("빠져들", "빠져들었", "빠져들어", POS, adjective=False, short_neg=False, negatable=False, viewer=True),
    reg("만족하", "만족했", "만족해", POS, adjective=False, mot=True, short_neg=False, viewer=True),
    reg("시간 가는 줄 모르", "시간 가는 줄 몰랐", "시간 가는 줄 몰라", POS, adjective=False,
        negatable=False, viewer=True),
    reg("소름 돋", "소름 돋았", "소름 돋아", POS, adjective=False, negatable=False, viewer=True),
    reg("다시 보고 싶", "다시 보고 싶었", "다시 보고 싶어", POS, short_neg=False, viewer=True),
    reg("눈물이 나", "눈물이 났", "눈물이 나", POS, adjective=False, negatable=False, viewer=True),
    reg("웃음이 터지", "웃음이 터졌", "웃음이 터져", POS, adjective=False, negatable=False, viewer=True),
    reg("마음이 따뜻해지", "마음이 따뜻해졌", "마음이 따뜻해져", POS, adjective=False, negatable=False,
        viewer=True),
    ida("기대 이상", POS, negatable=False, viewer=True),
    reg("졸", "졸았", "졸아", NEG, adjective=False, viewer=True),
    reg("졸리", "졸렸", "졸려", NEG, viewer=True),
    reg("후회하", "후회했", "후회해", NEG, adjective=False, short_neg=False, viewer=True),
    reg("실망하", "실망했", "실망해", NEG, adjective=False, short_neg=False, viewer=True),
    reg("지치", "지쳤", "지쳐", NEG, adjective=False, negatable=False, viewer=True),
    reg("하품이 나", "하품이 났", "하품이 나", NEG, adjective=False, negatable=False, viewer=True),
    reg("중간에 나오고 싶", "중간에 나오고 싶었", "중간에 나오고 싶어", NEG, negatable=False, viewer=True),
    reg("짜증나", "짜증났", "짜증나", NEG, adjective=False, negatable=False, viewer=True),
    ida("기대 이하", NEG, negatable=False, viewer=True),
    b_irregular("아깝", NEG, viewer=True, subjects=("돈이", "시간이", "티켓값이", "관람료가", "두 시간이")),
]

# Intensifiers: never change the polarity.
INTENSIFIERS = ["정말", "너무", "진짜", "아주", "매우", "엄청", "완전", "꽤", "무척", "굉장히", "참", "되게", "상당히", "많이"]
# Adverbs that go with a negated predicate (전혀 지루하지 않았다 = 긍정; 별로 재미있지 않았다 = 부정).
NEG_ADVERBS = ["전혀", "별로", "그다지", "하나도", "딱히"]
# Viewer-clause adverbs.
VIEWER_ADVERBS = ["끝까지", "처음부터 끝까지", "보는 내내", "중간부터", "마지막에", "솔직히"]

# Neutral context, as past stems: 어제 가족이랑 봤 → 봤다 / 봤어요 / 봤습니다 / 봤는데.
FILLERS = [
    "어제 가족이랑 봤", "개봉 첫날 보고 왔", "팝콘 먹으면서 봤", "혼자 조조로 봤", "OTT로 다시 봤",
    "친구 추천으로 봤", "동생이랑 같이 봤", "비 오는 날 극장에서 봤", "회사 동료들과 봤", "아이맥스로 봤",
    "심야 영화로 봤", "원작 소설을 먼저 읽었", "예고편만 보고 갔", "주말에 친구랑 봤", "부모님을 모시고 갔",
    "감독 전작은 못 봤", "원작은 안 읽었", "두 번째로 봤", "영화관에 사람이 많았", "자막으로 봤",
    "더빙판으로 봤", "아침 일찍 보러 갔", "리뷰를 안 보고 갔", "휴가 때 봤", "남자친구랑 봤",
    "여자친구랑 봤", "아이들과 함께 봤", "시사회에서 봤", "퇴근하고 봤", "3D로 봤",
]
# Neutral closing sentences (register-free).
CLOSERS = ["개인적인 생각입니다.", "참고하세요.", "제 기준입니다.", "그냥 제 느낌이에요.", "취향 차이는 있겠죠."]

# Contrast / continuation discourse markers that open a second sentence.
CONTRAST_OPENERS = ["하지만", "그런데", "그래도", "근데", "그렇지만", "다만"]

# Rating-like phrases: (text, polarity).
RATINGS = (
    [(f"10점 만점에 {n}점.", POS) for n in (8, 9, 10)]
    + [(f"10점 만점에 {n}점.", NEG) for n in (1, 2, 3)]
    + [("별 다섯 개 줍니다.", POS), ("별 네 개 반.", POS), ("평점 5점 드려요.", POS), ("★★★★★", POS),
       ("별 한 개도 아깝다.", NEG), ("별 하나 반.", NEG), ("평점 1점 드립니다.", NEG), ("★☆☆☆☆", NEG)]
)

# Whole-review verdicts for the pretraining corpus: (text, polarity). A corpus review that carries one
# states its overall polarity outright, so a masked verdict is predictable only from the polarity of
# the review (its last evaluative clause) and a masked polar word partly from the verdict.
VERDICTS = (
    [(v, POS) for v in [
        "추천합니다.", "강력 추천!", "꼭 보세요.", "별점 5점.", "또 보고 싶다.", "웃으면서 봤다.", "최고의 영화.",
        "재관람 의사 있음.", "인생 영화 등극.", "박수가 나왔다.", "돈이 전혀 아깝지 않다.", "만점 드립니다.",
        "두 번 보세요.", "강추합니다.",
    ]]
    + [(v, NEG) for v in [
        "비추천합니다.", "절대 비추!", "보지 마세요.", "별점 1점.", "시간이 아깝다.", "졸면서 봤다.", "최악의 영화.",
        "재관람 의사 없음.", "올해의 망작.", "한숨이 나왔다.", "돈이 너무 아깝다.", "빵점 드립니다.",
        "중간에 나왔다.", "비추합니다.",
    ]]
)

# ---- everyday language for the corpus ----------------------------------------------------------
EVERYDAY_SUBJECTS = [
    "수업", "여행", "숙소", "공연", "책", "강의", "노래", "게임", "서비스", "방", "경치", "산책", "전시회",
    "발표", "드라마", "콘서트", "호텔", "소설", "축제", "캠핑",
]
FOOD_SUBJECTS = ["음식", "커피", "식당", "카페", "빵", "국물", "디저트", "메뉴", "직원", "분위기"]
FOOD_PREDICATES: list[Predicate] = [
    reg("맛있", "맛있었", "맛있어", POS), ha("친절", POS), ha("깔끔", POS), ha("저렴", POS), ha("신선", POS),
    reg("좋", "좋았", "좋아", POS), ha("훌륭", POS),
    reg("맛없", "맛없었", "맛없어", NEG), ha("불친절", NEG), reg("비싸", "비쌌", "비싸", NEG),
    b_irregular("시끄럽", NEG), b_irregular("실망스럽", NEG), reg("나쁘", "나빴", "나빠", NEG),
]
EVERYDAY_PREDICATES: list[Predicate] = [
    reg("좋", "좋았", "좋아", POS), ha("훌륭", POS), ha("편안", POS), b_irregular("즐겁", POS),
    b_irregular("아름답", POS), ha("신선", POS), reg("재미있", "재미있었", "재미있어", POS), reg("알차", "알찼", "알차", POS),
    b_irregular("만족스럽", POS), b_irregular("흥미롭", POS),
    reg("나쁘", "나빴", "나빠", NEG), ha("지루", NEG), ha("불편", NEG), b_irregular("아쉽", NEG),
    ha("답답", NEG), ha("복잡", NEG), b_irregular("실망스럽", NEG), b_irregular("지겹", NEG),
    reg("재미없", "재미없었", "재미없어", NEG, negatable=False), ha("피곤", NEG),
]
PEOPLE = ["나는", "친구는", "동생은", "언니는", "형은", "어머니는", "아버지는", "선생님은", "민수는", "지영이는", "우리는"]
TIMES = ["오늘", "어제", "아침에", "저녁에", "주말에", "점심에", "밤에", "지난주에", "내일", "오후에"]
ACTIVITIES = [
    ("도서관에 갔", "도서관에 간다"), ("커피를 마셨", "커피를 마신다"), ("친구를 만났", "친구를 만난다"),
    ("운동을 했", "운동을 한다"), ("책을 읽었", "책을 읽는다"), ("영화를 봤", "영화를 본다"),
    ("숙제를 했", "숙제를 한다"), ("장을 봤", "장을 본다"), ("청소를 했", "청소를 한다"),
    ("공원을 걸었", "공원을 걷는다"), ("밥을 먹었", "밥을 먹는다"), ("버스를 탔", "버스를 탄다"),
    ("음악을 들었", "음악을 듣는다"), ("편지를 썼", "편지를 쓴다"), ("시험을 봤", "시험을 본다"),
    ("요리를 했", "요리를 한다"), ("집에서 쉬었", "집에서 쉰다"), ("여행을 떠났", "여행을 떠난다"),
]

# ---- facts for the instruction set --------------------------------------------------------------
CAPITALS = [
    ("한국", "서울"), ("일본", "도쿄"), ("중국", "베이징"), ("프랑스", "파리"), ("영국", "런던"),
    ("독일", "베를린"), ("이탈리아", "로마"), ("스페인", "마드리드"), ("미국", "워싱턴"), ("캐나다", "오타와"),
    ("호주", "캔버라"), ("러시아", "모스크바"), ("이집트", "카이로"), ("태국", "방콕"), ("베트남", "하노이"),
    ("인도", "뉴델리"), ("브라질", "브라질리아"), ("멕시코", "멕시코시티"), ("그리스", "아테네"), ("터키", "앙카라"),
    ("포르투갈", "리스본"), ("네덜란드", "암스테르담"), ("스웨덴", "스톡홀름"), ("노르웨이", "오슬로"),
    ("핀란드", "헬싱키"), ("폴란드", "바르샤바"), ("오스트리아", "빈"), ("아르헨티나", "부에노스아이레스"),
    ("필리핀", "마닐라"), ("인도네시아", "자카르타"), ("몽골", "울란바토르"), ("케냐", "나이로비"),
]
ANTONYMS = [
    ("크다", "작다"), ("길다", "짧다"), ("높다", "낮다"), ("많다", "적다"), ("덥다", "춥다"), ("밝다", "어둡다"),
    ("빠르다", "느리다"), ("무겁다", "가볍다"), ("넓다", "좁다"), ("깊다", "얕다"), ("쉽다", "어렵다"),
    ("좋다", "나쁘다"), ("새롭다", "낡다"), ("두껍다", "얇다"), ("비싸다", "싸다"), ("강하다", "약하다"),
    ("기쁘다", "슬프다"), ("깨끗하다", "더럽다"), ("재미있다", "재미없다"), ("맛있다", "맛없다"),
    ("시작", "끝"), ("위", "아래"), ("안", "밖"), ("앞", "뒤"), ("오른쪽", "왼쪽"), ("남자", "여자"),
    ("낮", "밤"), ("여름", "겨울"), ("입구", "출구"), ("성공", "실패"), ("긍정", "부정"), ("증가", "감소"),
    ("사다", "팔다"), ("열다", "닫다"), ("오다", "가다"), ("웃다", "울다"), ("이기다", "지다"), ("주다", "받다"),
]
WORDS = [
    "사과", "바나나", "포도", "딸기", "수박", "학교", "병원", "시장", "도서관", "극장", "고양이", "강아지",
    "토끼", "호랑이", "자동차", "기차", "비행기", "자전거", "연필", "공책", "의자", "책상", "하늘", "바다",
    "구름", "나무", "꽃", "음악", "영화", "배우", "감독", "노래", "사랑", "우정", "가족", "친구",
]
NUMBER_WORDS = ["영", "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉", "열"]

# ---- the held-out polar lexicon ---------------------------------------------------------------------
#: Stems of aspect predicates that the labelled train/valid/test splits never use. They occur in the
#: pretraining corpus (uniformly, like every predicate) and in the separate ``heldout_lexicon`` test
#: split, whose every evaluative clause uses one of them: only a model that learned their polarity in
#: pretraining can classify those reviews.
HELDOUT_STEMS = frozenset({
    # positive
    "탁월하", "절묘하", "유려하", "노련하", "찬란하", "정교하", "산뜻하", "흡족하", "경이롭", "감각적이", "입체적이",
    "빼어나", "눈부시", "걸작이", "수작이",
    # negative
    "지지부진하", "조악하", "졸렬하", "무미건조하", "구태의연하", "난잡하", "미흡하", "지리멸렬하", "단조롭",
    "신파적이", "평면적이", "졸작이", "태작이", "어처구니없", "무성의하",
})
assert len(HELDOUT_STEMS & {p.stem for p in ASPECT_PREDICATES}) == len(HELDOUT_STEMS)

# ---- the synthetic world of the knowledge corpus (see world.py) ---------------------------------------
NAME_FIRST = ["민", "지", "서", "하", "도", "윤", "수", "예", "준", "현", "태", "은", "채", "다", "소", "규"]
NAME_SECOND = ["우", "아", "호", "린", "진", "빈", "율", "희", "원", "솔", "람", "결"]
CITIES = ["서울", "부산", "대구", "인천", "광주", "대전", "울산", "수원", "전주", "춘천", "제주", "포항"]
JOBS = ["의사", "교사", "요리사", "경찰", "화가", "가수", "기자", "농부", "목수", "간호사", "변호사", "소방관"]
FRUITS = ["사과", "포도", "딸기", "수박", "복숭아", "바나나", "자두", "참외", "망고", "레몬"]
PETS = ["고양이", "강아지", "토끼", "앵무새", "거북이", "햄스터", "금붕어", "고슴도치"]
CATEGORIES = [
    ("과일", ["사과", "포도", "딸기", "수박", "귤", "복숭아", "바나나", "자두", "참외", "망고", "레몬", "체리"]),
    ("동물", ["호랑이", "사자", "코끼리", "기린", "여우", "늑대", "판다", "원숭이", "하마", "사슴"]),
    ("탈것", ["자동차", "기차", "비행기", "자전거", "버스", "택시", "지하철", "오토바이"]),
    ("악기", ["피아노", "기타", "바이올린", "드럼", "플루트", "첼로", "하프", "가야금"]),
    ("채소", ["당근", "오이", "양파", "감자", "배추", "시금치", "가지", "호박"]),
    ("운동", ["축구", "야구", "농구", "배구", "테니스", "수영", "탁구", "골프"]),
    ("색깔", ["빨강", "파랑", "노랑", "초록", "보라", "주황", "분홍", "검정"]),
    ("가구", ["의자", "책상", "침대", "소파", "옷장", "식탁", "책장", "서랍장"]),
]
ALL_CATEGORY_WORDS = sorted({w for _, ws in CATEGORIES for w in ws})
#: Words the tokenizer keeps whole before any particle or ending (소빈 + 은, 고슴도치 + 이다), so an entity
#: is one token however it is inflected: the knowledge the causal LM stores is keyed on it.
ENTITY_WORDS = sorted(set(CITIES) | set(JOBS) | set(FRUITS) | set(PETS) | set(ALL_CATEGORY_WORDS)
                      | {c for c, _ in CATEGORIES} | {a for a, _ in CAPITALS} | {b for _, b in CAPITALS})
#: Particles and endings that follow an entity word (continuation pieces of the tokenizer).
ENTITY_SUFFIXES = ["은", "는", "이", "가", "을", "를", "의", "에", "에서", "로", "으로", "와", "과", "도", "이다", "이고",
                   "이었다", "다", "고", "만", "한테", "랑", "이랑", "처럼", "보다", "까지", "부터", "이에요", "예요", "입니다"]
