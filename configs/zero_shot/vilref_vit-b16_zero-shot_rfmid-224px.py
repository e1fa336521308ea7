# Zero-shot RFMiD 1.0 (45 diseases, multi-label): each disease against the "normal" prompt.
_base_ = ['./_base_/zero_shot_vit-b16.py']

# Chinese names of RFMiD's disease columns, in the dataset's class order.
class_names = dict(
    DR=['糖尿病视网膜病变', '糖尿病性视网膜病变'],
    ARMD=['年龄相关性黄斑变性', '老年性黄斑变性'],
    MH=['屈光间质混浊', '眼底窥不清'],
    DN=['玻璃膜疣'],
    MYA=['高度近视眼底改变', '近视性眼底改变'],
    BRVO=['视网膜分支静脉阻塞', '分支静脉阻塞'],
    TSLN=['豹纹状眼底', '豹纹状改变'],
    ERM=['黄斑前膜', '视网膜前膜'],
    LS=['激光斑', '激光光凝斑'],
    MS=['黄斑瘢痕', '黄斑区瘢痕'],
    CSR=['中心性浆液性脉络膜视网膜病变', '中浆'],
    ODC=['视杯扩大', '杯盘比增大'],
    CRVO=['视网膜中央静脉阻塞', '中央静脉阻塞'],
    TV=['视网膜血管迂曲', '血管迂曲扩张'],
    AH=['星状玻璃体变性', '玻璃体星状小体'],
    ODP=['视盘苍白', '视盘色淡'],
    ODE=['视盘水肿', '视乳头水肿'],
    ST=['视盘睫状分流血管', '视睫状静脉分流'],
    AION=['前部缺血性视神经病变'],
    PT=['黄斑旁毛细血管扩张症', '黄斑区毛细血管扩张'],
    RT=['视网膜牵拉', '牵拉性视网膜改变'],
    RS=['视网膜炎'],
    CRS=['脉络膜视网膜炎'],
    EDN=['渗出', '硬性渗出'],
    RPEC=['视网膜色素上皮改变', '色素紊乱'],
    MHL=['黄斑裂孔', '黄斑孔'],
    RP=['视网膜色素变性'],
    CWS=['棉絮斑', '软性渗出'],
    CB=['脉络膜缺损', '视盘缺损'],
    ODPM=['视盘小凹黄斑病变', '视盘小凹'],
    PRH=['视网膜前出血'],
    MNF=['视网膜有髓神经纤维', '有髓神经纤维'],
    HR=['出血性视网膜病变', '视网膜出血'],
    CRAO=['视网膜中央动脉阻塞', '中央动脉阻塞'],
    TD=['视盘倾斜', '倾斜视盘'],
    CME=['黄斑囊样水肿'],
    PTCR=['外伤性脉络膜破裂', '脉络膜裂伤'],
    CF=['脉络膜皱褶'],
    VH=['玻璃体积血', '玻璃体出血'],
    MCA=['视网膜大动脉瘤'],
    VS=['视网膜血管炎'],
    BRAO=['视网膜分支动脉阻塞', '分支动脉阻塞'],
    PLQ=['视网膜动脉栓子', '视网膜动脉斑块'],
    HPED=['出血性色素上皮脱离'],
    CL=['侧支循环血管', '视网膜侧支血管'],
)

model = dict(zero_shot=dict(class_names=class_names, mode='multilabel'))

# RFMiD 1.0 as distributed: Test_Set/RFMiD_Testing_Labels.csv and Test_Set/Test/{ID}.png
# (Training_Set/..., Evaluation_Set/RFMiD_Validation_Labels.csv + Validation/ likewise).
test_dataloader = dict(
    dataset=dict(
        type='RFMiDDataset',
        data_root='data/RFMiD/',
        ann_file='Test_Set/RFMiD_Testing_Labels.csv',
        data_prefix='Test_Set/Test/'))
test_evaluator = [
    dict(type='AUROC'),
    dict(type='AveragePrecision'),
    dict(type='MultiLabelMetric', items=('f1-score', ), average='macro'),
]
